"""Several targets at the edges: odd metric names, extreme references, hand-edited models,
stores and logs where the targets do not line up. Every bad input is one `Error:` line naming
what to fix, with the SPEC §5 exit code, never a traceback."""

from __future__ import annotations

import json

import pytest

from regmixd_cli.fit.files import METADATA_HASH, metadata_hash
from tests.helpers.cli import fails
from tests.helpers.targets import FAST, METRICS, STEPS, write_logs

ODD = ("val/x=y", "val/[en]", "val/e", "val/ü*")


@pytest.fixture(scope="module")
def edge(world):
    """The store of METRICS and the model of two targets (val/a=2, val/b) fitted on it."""
    root, store, models = world
    return root, store, models["mean"]


def _objective(model) -> dict:
    return json.loads((model / "model.json").read_text())["objective"]


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory):
    from tests.helpers.cli import Invoker

    root = tmp_path_factory.mktemp("odd")
    write_logs(root / "odd.jsonl", n_runs=30, seed=1, metrics=ODD)
    store = root / "store"
    assert Invoker()("ingest", root / "odd.jsonl", "--out", store).exit_code == 0
    return store


@pytest.mark.parametrize(
    ("given", "metrics"),
    [
        # A store metric named exactly as given is that metric, though it holds '=' or '['.
        (("val/x=y", "val/e"), ["val/x=y", "val/e"]),
        (("val/[en]", "val/e"), ["val/[en]", "val/e"]),
        (("val/x=y=2", "val/[en]=1"), ["val/x=y", "val/[en]"]),
        # Otherwise a pattern still selects: 'val/ü*' is a metric too, 'val/?' only val/e.
        (("val/?", "val/ü*"), ["val/e", "val/ü*"]),
    ],
)
def test_metric_names_with_equals_or_glob_characters(cli, odd_store, tmp_path, given, metrics):
    out = tmp_path / "m"
    args = [a for g in given for a in ("--target", g)]
    result = cli("fit", odd_store, "--out", out, *FAST, *args)
    assert result.exit_code == 0, result.output
    assert _objective(out)["metrics"] == metrics


def test_one_odd_target_is_that_metric_not_a_pattern(cli, odd_store, tmp_path):
    """`--target 'val/[en]'` names the metric val/[en]; it must not fit val/e instead."""
    for name in ("val/[en]", "val/x=y"):
        out = tmp_path / name.replace("/", "_").replace("[", "").replace("]", "")
        result = cli("fit", odd_store, "--out", out, *FAST, "--target", name)
        assert result.exit_code == 0, result.output
        assert json.loads((out / "model.json").read_text())["target"] == name


@pytest.mark.parametrize(
    ("reference", "weights"),
    [
        ({"val/a": 1e308, "val/b": 1e308, "val/c": -1e308}, ("1", "1", "3")),  # overflows
        ({"val/a": 1e308, "val/b": 1e308, "val/c": -1e308}, ("1", "1", "1")),  # swamps
    ],
)
def test_a_reference_that_swamps_the_losses_is_refused(cli, edge, tmp_path, reference,
                                                        weights):
    _, store, _ = edge
    file = tmp_path / "ref.json"
    file.write_text(json.dumps(reference))
    out = tmp_path / "m"
    args = [a for m, w in zip(METRICS, weights, strict=True) for a in ("--target", f"{m}={w}")]
    fails(cli("fit", store, "--out", out, *FAST, *args, "--objective", "worst", "--reference",
              file), 2, str(file))
    assert not out.exists()


def test_a_reference_that_is_not_a_model_names_the_option(cli, edge, tmp_path):
    _, store, _ = edge
    fails(cli("fit", store, "--out", tmp_path / "m", *FAST, "--target", "val/*", "--objective",
              "worst", "--reference", store), 4, "--reference", str(store))


def _edited(model, tmp_path, edit):
    """A copy of `model` whose model.json is edited by `edit` and re-hashed (a careful hand
    edit: the hash check alone does not catch it)."""
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(model, copy)
    meta = json.loads((copy / "model.json").read_text())
    edit(meta)
    meta.pop(METADATA_HASH)
    meta[METADATA_HASH] = metadata_hash(meta)
    (copy / "model.json").write_text(json.dumps(meta, indent=2))
    return copy


def _set(path: str, value):
    def edit(meta):
        *keys, last = path.split(".")
        node = meta
        for key in keys:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return edit


@pytest.mark.parametrize(
    "edit",
    [
        _set("objective.weights", [0.0, 0.0]),
        _set("objective.weights", [-1.0, 2.0]),
        _set("objective.weights", [1e308, 1e308]),
        _set("objective.metrics", [1, 2]),
        _set("objective.kind", "median"),
        _set("objective.reference", {"val/a": "x", "val/b": 1}),
        _set("report.targets", "x"),
        _set("report.objective", 5),
        lambda meta: (_set("objective.metrics", ["val/a", "val/a"])(meta),
                      _set("targets.1.metric", "val/a")(meta)),
    ],
    ids=["zero-weights", "negative-weight", "huge-weights", "metrics-not-names", "kind",
         "reference-not-number", "report-targets", "report-objective", "metric-twice"],
)
def test_a_hand_edited_model_of_several_targets_is_exit_4(cli, edge, tmp_path, edit):
    _, _, model = edge
    edited = _edited(model, tmp_path, edit)
    for args in (("show", edited),
                 ("online", edited, "--step", "200", "--target-steps", "600", "--candidates",
                  "300", "--loss", "val/a=3.9", "--loss", "val/b=4.1")):
        fails(cli(*args), 4, "model.json")


def test_no_run_logging_every_target_is_named(cli, edge, tmp_path):
    """Runs that log val/b or val/c but never both: the error says so (not 'too short')."""
    root, _, model = edge
    rows = [json.loads(line) for line in (root / "logs.jsonl").read_text().splitlines()]
    for row in rows:
        if "step" in row:
            row.pop("val/c" if int(str(row["run"])[1:]) % 2 else "val/b")
    log = tmp_path / "alt.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = tmp_path / "store"
    assert cli("ingest", log, "--out", store).exit_code == 0
    result = cli("fit", store, "--out", tmp_path / "m", *FAST, "--target", "val/b",
                 "--target", "val/c")
    fails(result, 3, "val/b", "val/c", "every target")
    assert "stop before" not in result.stderr
    # A model of val/a, val/b evaluated where no run has both.
    rows = [json.loads(line) for line in (root / "logs.jsonl").read_text().splitlines()]
    for row in rows:
        if "step" in row:
            row.pop("val/a" if int(str(row["run"])[1:]) % 2 else "val/b")
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    other = tmp_path / "other"
    assert cli("ingest", log, "--out", other).exit_code == 0
    result = cli("evaluate", model, other)
    fails(result, 4, "val/a", "val/b", "every target")


def test_evaluate_warns_of_runs_left_out_for_a_missing_target(cli, edge, tmp_path):
    root, _, model = edge
    rows = [json.loads(line) for line in (root / "logs.jsonl").read_text().splitlines()]
    for row in rows:
        if "step" in row and int(str(row["run"])[1:]) >= 30:
            row.pop("val/b")
    log = tmp_path / "half.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = tmp_path / "store"
    assert cli("ingest", log, "--out", store).exit_code == 0
    result = cli("evaluate", model, store, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_runs"] == 30
    assert "6 run(s)" in result.stderr and "r030" in result.stderr
    assert report["excluded"]["lacking_a_target"][0] == "r030"


def test_online_names_the_metric_of_a_bad_loss(cli, edge):
    _, _, model = edge
    base = ("online", model, "--step", "200", "--target-steps", "600", "--candidates", "300")
    for bad in ("nan", "0", "-1", "inf"):
        fails(cli(*base, "--loss", "val/a=3.9", "--loss", f"val/b={bad}"), 2, "val/b")


def test_follow_says_when_the_targets_never_share_a_step(cli, edge, tmp_path):
    _, _, model = edge
    rows = [{"step": s, "val/a": 4.5 - s / 1000} for s in (100, 200, 300, 400, 500)]
    rows += [{"step": s + 50, "val/b": 4.5 - s / 1000} for s in (100, 200, 300, 400, 500)]
    log = tmp_path / "cadence.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("online", model, "--follow", log, "--target-steps", "600", "--candidates",
                 "300", "--timeout", "0.3", "--poll", "0.05")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "never at one step" in result.stderr and "val/b" in result.stderr


def test_a_forced_form_is_not_said_to_be_chosen_by_evidence(cli, edge, tmp_path):
    _, store, _ = edge
    result = cli("fit", store, "--out", tmp_path / "m", *FAST, "--target", "val/a",
                 "--target", "val/b", "--model", "pooled", "--json")
    assert result.exit_code == 0, result.output
    reason = json.loads(result.stdout)["choice"]["reason"]
    assert reason.startswith("forced by --model pooled") and "evidence" not in reason


@pytest.mark.parametrize(
    ("weights", "code", "named"),
    [(("1e308", "1e308"), 0, None), (("1e-320", "1"), 2, "val/a"), (("1", "1e12"), 2, "val/a")],
)
def test_extreme_weights(cli, edge, tmp_path, weights, code, named):
    """Huge weights are normalised without overflow; a weight that normalises to (nearly)
    nothing is refused, naming its target (model.json could not record it)."""
    _, store, _ = edge
    out = tmp_path / "m"
    result = cli("fit", store, "--out", out, *FAST, "--target", f"val/a={weights[0]}",
                 "--target", f"val/b={weights[1]}")
    if code:
        fails(result, code, named)
        assert not out.exists()
    else:
        assert result.exit_code == 0, result.output
        assert _objective(out)["weights"] == [0.5, 0.5]
        assert cli("show", out).exit_code == 0


def test_commands_of_one_target_refuse_several_plainly(cli, edge, tmp_path):
    """`run --target A --target B` fitted B alone, silently; `schedule --risk` on a model of
    several targets advised `fit --ensemble`, which such a model refuses."""
    root, _, model = edge
    out = tmp_path / "run"
    fails(cli("run", root / "logs.jsonl", "--out", out, "--target", "val/a", "--target",
              "val/b"), 2, "--target", "regmixd fit")
    assert not out.exists()
    result = cli("schedule", model, "--risk", "0.8", "--out", "-")
    fails(result, 2, "--risk", "several targets")
    assert "--ensemble 20" not in result.stderr


def test_an_out_of_range_loss_of_several_targets_does_not_blame_metric(cli, edge):
    _, _, model = edge
    result = cli("online", model, "--step", "200", "--target-steps", "600", "--candidates",
                 "300", "--loss", "val/a=3.9", "--loss", "val/b=4.1", "--json")
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert any("outside the range" in w and "val/b" in w for w in warnings)
    assert not any("--metric" in w for w in warnings)


@pytest.mark.parametrize("order", [("val/a", "val/c"), ("val/c", "val/a")])
def test_a_target_logged_once_per_run_next_to_a_curve(cli, edge, tmp_path, order):
    """val/c only at the last step, val/a along the run: a traceback (val/a first) or, the
    other way round, an endpoint model of both without a word; now one error either way, and
    --switch-points 0 fits the endpoint model of both."""
    root, _, _ = edge
    rows = [json.loads(line) for line in (root / "logs.jsonl").read_text().splitlines()]
    for row in rows:
        if "step" in row and row["step"] != STEPS[-1]:
            row.pop("val/c")
    log = tmp_path / "sparse.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = tmp_path / "store"
    assert cli("ingest", log, "--out", store).exit_code == 0
    args = ("fit", store, *FAST[:4], "--folds", "3", "--target", order[0], "--target", order[1])
    fails(cli(*args, "--out", tmp_path / "m"), 2, "val/c", "--switch-points 0")
    result = cli(*args, "--out", tmp_path / "m0", "--switch-points", "0")
    assert result.exit_code == 0, result.output


def _excess_model(cli, store, tmp_path, reference):
    """A model of val/a, val/b whose objective is the worst excess over `reference`."""
    file = tmp_path / "ref.json"
    file.write_text(json.dumps(reference))
    model = tmp_path / "excess"
    result = cli("fit", store, "--out", model, *FAST, "--target", "val/a", "--target", "val/b",
                 "--objective", "worst", "--reference", file)
    assert result.exit_code == 0, result.output
    return model


def test_online_excess_loss_is_on_one_scale(cli, edge, tmp_path):
    """With --reference (a proxy's losses) and a param ratio, the observed excess loss is
    measured as the predicted one is: corrected / ratio, not run loss minus proxy reference."""
    model = _excess_model(cli, edge[1], tmp_path, {"val/a": 3.5, "val/b": 3.6})
    result = cli("online", model, "--step", "200", "--target-steps", "600", "--candidates",
                 "300", "--param-ratio", "8", "--beta", "0.05", "--loss", "val/a=4.6",
                 "--loss", "val/b=4.8", "--json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    ratio = 8 ** 0.05
    assert decision["corrected_loss"] == pytest.approx(max(4.6 * ratio - 3.5,
                                                           4.8 * ratio - 3.6), abs=1e-9)
    assert decision["loss"] == pytest.approx(decision["corrected_loss"] / ratio, abs=1e-9)
    assert decision["predicted_target_loss"] == pytest.approx(
        decision["predicted_loss"] / ratio, abs=1e-9)


def test_follow_resumes_a_negative_excess_loss(cli, edge, tmp_path):
    """Worst with a reference above the run's losses: the objective is negative, a normal
    value; the --state file that records it must restore (it was refused as corrupt)."""
    model = _excess_model(cli, edge[1], tmp_path, {"val/a": 9.0, "val/b": 9.0})
    rows = [{"step": s, "val/a": 4.5 - s / 1000, "val/b": 4.6 - s / 1000}
            for s in (100, 200, 300, 400, 500)]
    log, state = tmp_path / "train.jsonl", tmp_path / "state.json"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    base = ("online", model, "--follow", log, "--target-steps", "600", "--candidates", "300",
            "--param-ratio", "1", "--timeout", "0.3", "--poll", "0.05", "--state", state)
    first = cli(*base)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["loss"] < 0
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = cli(*base)
    assert second.exit_code == 0, second.output
    assert [json.loads(line)["switch"] for line in second.stdout.splitlines()] == [2]


def test_follow_hints_do_not_suggest_metric_for_several_targets(cli, edge, tmp_path):
    """A log lacking val/b: the hint named `--metric val/a` (refused with several targets)."""
    _, _, model = edge
    rows = [{"step": s, "val/a": 4.5 - s / 1000} for s in range(100, 600, 20)]
    log = tmp_path / "lacking.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("online", model, "--follow", log, "--target-steps", "600", "--candidates",
                 "300", "--timeout", "0.3", "--poll", "0.05")
    fails(result, 3, "val/b")
    assert "--metric" not in result.stderr
    assert "every target (val/a, val/b)" in result.stderr


@pytest.mark.parametrize(("given", "said"), [("", "give a metric name"), ("=2", "before '='")])
def test_an_empty_target_name(cli, edge, tmp_path, given, said):
    _, store, _ = edge
    result = cli("fit", store, "--out", tmp_path / "m", *FAST, "--target", given, "--target",
                 "val/a")
    fails(result, 2, said)
    assert given or "'='" not in result.stderr


def test_an_objective_without_targets_is_a_usage_error(cli, tmp_path):
    write_logs(tmp_path / "logs.jsonl")
    store = tmp_path / "store"
    assert cli("ingest", tmp_path / "logs.jsonl", "--out", store).exit_code == 0
    fails(cli("fit", store, "--out", tmp_path / "m", *FAST, "--objective", "worst"), 2,
          "--objective worst", "--target")
    assert not (tmp_path / "m").exists()
