"""Several target metrics through the CLI: weights, globs, `worst`, every command, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.helpers.cli import SAMPLE_FIT, fails
from tests.helpers.paths import PROXY_LOGS
from tests.helpers.targets import DOMAINS, FAST, METRICS, STEPS, true_loss, write_logs


def _meta(model):
    return json.loads((model / "model.json").read_text())


def test_weights_are_normalised_and_every_stage_shows_each_target(cli, world, tmp_path):
    _, _, models = world
    meta = _meta(models["mean"])
    assert meta["objective"]["metrics"] == ["val/a", "val/b"]
    assert meta["objective"]["weights"] == pytest.approx([2 / 3, 1 / 3])
    assert [t["metric"] for t in meta["targets"]] == ["val/a", "val/b"]
    assert set(meta["report"]["targets"]) == {"val/a", "val/b"}
    out = tmp_path / "s.json"
    result = cli("schedule", models["mean"], "--out", out, "--candidates", "2000")
    assert result.exit_code == 0, result.output
    schedule = json.loads(out.read_text())
    assert schedule["provenance"]["objective"]["kind"] == "mean"
    for stage in schedule["stages"]:
        losses = stage["predicted_losses"]
        assert set(losses) == {"val/a", "val/b"}
        mean = 2 / 3 * losses["val/a"] + 1 / 3 * losses["val/b"]
        assert stage["predicted_loss"] == pytest.approx(mean, abs=2e-6)


def test_a_glob_selects_every_matching_metric(world):
    _, _, models = world
    assert _meta(models["glob"])["objective"]["metrics"] == list(METRICS)
    assert _meta(models["glob"])["objective"]["weights"] == pytest.approx([1 / 3] * 3)


def test_the_objective_moves_the_mixture(cli, world):
    """val/a alone wants domain a; the mean of all three wants all three domains."""
    _, _, models = world

    def static_weights(model):
        result = cli("schedule", model, "--static", "--out", "-", "--candidates", "4000")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["stages"][0]["weights"]

    def true_losses(weights):
        m = np.asarray([weights[d] for d in DOMAINS])
        return np.asarray([true_loss(k, m, STEPS[-1]) for k in range(len(METRICS))])

    single, mean = static_weights(models["single"]), static_weights(models["glob"])
    assert single["a"] > 0.6
    # Each mixture is truly better at what it was asked for, by a clear margin.
    assert true_losses(single)[0] < true_losses(mean)[0] - 0.05
    assert true_losses(mean).mean() < true_losses(single).mean() - 0.05


def test_worst_is_the_largest_target_and_a_reference_shifts_it(cli, world, tmp_path):
    root, store, models = world
    result = cli("schedule", models["worst"], "--static", "--out", "-", "--candidates", "2000")
    assert result.exit_code == 0, result.output
    (stage,) = json.loads(result.stdout)["stages"]
    assert stage["predicted_loss"] == pytest.approx(max(stage["predicted_losses"].values()),
                                                    abs=2e-6)
    reference = tmp_path / "ref.json"
    reference.write_text(json.dumps({"val/a": 3.1, "val/b": 3.2, "val/c": 3.9}))
    excess = tmp_path / "excess"
    result = cli("fit", store, "--out", excess, *FAST, "--target", "val/*", "--objective",
                 "worst", "--reference", reference)
    assert result.exit_code == 0, result.output
    assert _meta(excess)["objective"]["reference"] == {"val/a": 3.1, "val/b": 3.2, "val/c": 3.9}
    result = cli("schedule", excess, "--static", "--out", "-", "--candidates", "2000")
    (stage,) = json.loads(result.stdout)["stages"]
    losses = stage["predicted_losses"]
    expected = max(losses["val/a"] - 3.1, losses["val/b"] - 3.2, losses["val/c"] - 3.9)
    assert stage["predicted_loss"] == pytest.approx(expected, abs=2e-6)
    # --reference MODEL: each target's prediction for that model's prior mixture.
    by_model = tmp_path / "by-model"
    result = cli("fit", store, "--out", by_model, *FAST, "--target", "val/*", "--objective",
                 "worst", "--reference", models["glob"])
    assert result.exit_code == 0, result.output
    assert set(_meta(by_model)["objective"]["reference"]) == set(METRICS)


def test_one_target_is_the_single_metric_model_of_today(cli, tmp_path):
    store = tmp_path / "store"
    assert cli("ingest", PROXY_LOGS, "--out", store).exit_code == 0
    texts = []
    for i, extra in enumerate(((), ("--target", "val/pile_cc"), ("--target", "val/pile_cc=3"),
                               ("--target", "val/*"))):
        out = tmp_path / f"m{i}"
        result = cli("fit", store, "--out", out, *SAMPLE_FIT, "--switch-points", "2", *extra)
        assert result.exit_code == 0, result.output
        texts.append((out / "model.json").read_text())
    assert "objective" not in json.loads(texts[0])
    assert all(t == texts[0] for t in texts)


def test_predict_compare_evaluate_show_each_target(cli, world, tmp_path):
    _, store, models = world
    model = models["mean"]
    result = cli("compare", model, "static", "offline", "--candidates", "1000", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["targets"] == ["val/a", "val/b"]
    for item in data["items"]:
        losses = item["target_losses"]
        mean = 2 / 3 * losses["val/a"] + 1 / 3 * losses["val/b"]
        assert item["final_loss"] == pytest.approx(mean, abs=2e-6)
    result = cli("compare", model, "static", "offline", "--candidates", "1000")
    assert result.exit_code == 0 and "val/b" in result.stdout
    schedule = tmp_path / "s.json"
    assert cli("schedule", model, "--out", schedule, "--candidates", "1000").exit_code == 0
    result = cli("predict", model, schedule)
    assert result.exit_code == 0 and "val/a:" in result.stdout and "val/b:" in result.stdout
    result = cli("evaluate", model, store, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["targets"]) == {"val/a", "val/b"}
    assert report["rollout"]["spearman"] > 0.9
    result = cli("show", model)
    assert result.exit_code == 0 and "Each target" in result.stdout


def test_online_needs_every_targets_loss(cli, world):
    _, _, models = world
    model = models["mean"]
    base = ("online", model, "--step", "200", "--target-steps", "600", "--candidates", "1000",
            "--param-ratio", "1", "--json")
    result = cli(*base, "--loss", "val/a=3.9", "--loss", "val/b=4.1")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["losses"] == {"val/a": 3.9, "val/b": 4.1}
    assert decision["loss"] == pytest.approx(2 / 3 * 3.9 + 1 / 3 * 4.1)
    assert math.isclose(sum(decision["weights"].values()), 1.0, abs_tol=1e-9)
    fails(cli(*base, "--loss", "val/a=3.9"), 2, "val/b")
    fails(cli(*base, "--loss", "3.9"), 2, "val/a", "val/b")
    fails(cli(*base, "--loss", "val/a=3.9", "--loss", "val/b=4.1", "--loss", "val/x=1"), 2,
          "val/x")
    fails(cli(*base, "--loss", "val/a=3.9", "--loss", "val/b=abc"), 2, "val/b=abc")


def _follow_log(path, metrics):
    rows = [{"run": "t", "step": s, **dict.fromkeys(metrics, 4.5 - s / 1000)}
            for s in (100, 200, 300, 400, 500)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_online_follow_reads_every_target(cli, world, tmp_path):
    _, _, models = world
    log = tmp_path / "train.jsonl"
    _follow_log(log, ("val/a", "val/b"))
    base = ("online", models["mean"], "--follow", log, "--target-steps", "600", "--candidates",
            "1000", "--param-ratio", "1", "--timeout", "0.3", "--poll", "0.05")
    result = cli(*base)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["switch"] for d in lines] == [1, 2]
    assert all(set(d["losses"]) == {"val/a", "val/b"} for d in lines)
    assert all(set(d["predicted_losses"]) == {"val/a", "val/b"} for d in lines)
    written = tmp_path / "online.json"
    result = cli(*base, "--out-schedule", written)
    assert result.exit_code == 0, result.output
    stages = json.loads(written.read_text())["stages"]
    for stage in stages:
        losses = stage["predicted_losses"]
        mean = 2 / 3 * losses["val/a"] + 1 / 3 * losses["val/b"]
        assert stage["predicted_loss"] == pytest.approx(mean, abs=2e-6)
    fails(cli(*base, "--metric", "val/a"), 2, "--metric")
    lacking = tmp_path / "lacking.jsonl"
    _follow_log(lacking, ("val/a",))
    fails(cli("online", models["mean"], "--follow", lacking, "--target-steps", "600",
              "--candidates", "1000", "--timeout", "0.3", "--poll", "0.05"), 3, "val/b")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--target", "val/nope", "--target", "val/a"), "val/nope"),
        (("--target", "val/a=0", "--target", "val/b"), "val/a=0"),
        (("--target", "val/a=-1", "--target", "val/b"), "val/a=-1"),
        (("--target", "val/a=x", "--target", "val/b"), "val/a=x"),
        (("--target", "val/a=inf", "--target", "val/b"), "val/a=inf"),
        (("--target", "loss/*", "--target", "val/a"), "loss/*"),
        (("--target", "val/*", "--target", "val/a"), "val/a"),
        (("--target", "val/a", "--target", "val/b", "--objective", "best"), "best"),
        (("--target", "val/a", "--target", "val/b", "--reference", "ref.json"), "--reference"),
    ],
)
def test_bad_targets_are_usage_errors(cli, world, tmp_path, args, named):
    _, store, _ = world
    (tmp_path / "ref.json").write_text('{"val/a": 1, "val/b": 2}')
    args = tuple(str(tmp_path / a) if a == "ref.json" else a for a in args)
    out = tmp_path / "m"
    fails(cli("fit", store, "--out", out, *FAST, *args), 2, named)
    assert not out.exists()


def test_a_reference_must_cover_every_target(cli, world, tmp_path):
    _, store, _ = world
    reference = tmp_path / "ref.json"
    reference.write_text('{"val/a": 3.0}')
    fails(cli("fit", store, "--out", tmp_path / "m", *FAST, "--target", "val/*", "--objective",
              "worst", "--reference", reference), 2, "val/b")
    reference.write_text('{"val/a": "x"}')
    fails(cli("fit", store, "--out", tmp_path / "m", *FAST, "--target", "val/*", "--objective",
              "worst", "--reference", reference), 2, "val/a")


def test_a_store_lacking_a_target_is_named(cli, tmp_path):
    write_logs(tmp_path / "logs.jsonl", drop="val/c")
    store = tmp_path / "store"
    assert cli("ingest", tmp_path / "logs.jsonl", "--out", store).exit_code == 0
    fails(cli("fit", store, "--out", tmp_path / "m", *FAST, "--target", "val/a",
              "--target", "val/c"), 2, "val/c")


def test_several_targets_are_deterministic(cli, world, tmp_path):
    _, store, models = world
    again = tmp_path / "again"
    result = cli("fit", store, "--out", again, *FAST, "--target", "val/a=2", "--target",
                 "val/b", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert (again / "model.json").read_bytes() == (models["mean"] / "model.json").read_bytes()
    for name in sorted(p.name for p in models["mean"].glob("*.ubj")):
        assert (again / name).read_bytes() == (models["mean"] / name).read_bytes()


def test_plots_and_show_draw_each_target(cli, world, tmp_path):
    pytest.importorskip("matplotlib")
    _, store, models = world
    cv_plot = tmp_path / "cv.png"
    result = cli("fit", store, "--out", tmp_path / "m", *FAST, "--target", "val/a",
                 "--target", "val/b", "--plot", cv_plot)
    assert result.exit_code == 0, result.output
    assert cv_plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    compare_plot = tmp_path / "cmp.svg"
    result = cli("compare", models["mean"], "static", "offline", "--candidates", "1000",
                 "--plot", compare_plot)
    assert result.exit_code == 0, result.output
    svg = compare_plot.read_text()
    assert "Each target" in svg
    schedule = tmp_path / "s.json"
    assert cli("schedule", models["mean"], "--out", schedule, "--candidates", "1000").exit_code == 0
    result = cli("show", schedule)
    assert result.exit_code == 0 and "val/a" in result.stdout and "val/b" in result.stdout
