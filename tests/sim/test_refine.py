"""`regmixd design --refine MODEL`: the verification round, through the CLI."""

from __future__ import annotations

import csv
import json

from tests.helpers.cli import fails


def _phases(path):
    """{run: [(start_step, {domain: weight}), ...]} of a phased design CSV."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    out: dict[str, list] = {}
    for row in rows:
        run, start = row.pop("run"), int(row.pop("start_step"))
        out.setdefault(run, []).append((start, {d: float(w) for d, w in row.items()}))
    return out


def test_refine_plans_the_schedule_static_regmix_and_their_neighbours(cli, tiny_model, tmp_path):
    out = tmp_path / "verify.csv"
    result = cli("design", "--refine", tiny_model, "--runs", "6", "--proxy-steps", "600",
                 "--prefix", "v", "--out", out)
    assert result.exit_code == 0, result.output
    assert "verification round of 6 runs" in result.stderr
    phases = _phases(out)
    assert sorted(phases) == ["vd000", "vd001", "vd002", "vs000", "vs001", "vs002"]
    # The first run of each family is the plan itself, on the proxies' own step axis.
    schedule = json.loads(cli("schedule", tiny_model, "--target-steps", "600", "--json",
                              "--force-dynamic").stdout)
    assert [s for s, _ in phases["vd000"]] == [s["start_step"] for s in schedule["stages"]]
    assert [w for _, w in phases["vd000"]] == [s["weights"] for s in schedule["stages"]]
    static = json.loads(cli("schedule", tiny_model, "--static", "--target-steps", "600",
                            "--json").stdout)
    assert phases["vs000"] == [(0, static["stages"][0]["weights"])]
    # Neighbours stay close to their plan but are not copies.
    near = phases["vd001"]
    assert [s for s, _ in near] == [s for s, _ in phases["vd000"]]
    gaps = [sum(abs(a[d] - b[d]) for d in a) for (_, a), (_, b) in zip(near, phases["vd000"],
                                                                      strict=True)]
    assert all(0 < g < 0.8 for g in gaps), gaps
    for run in phases.values():
        assert all(abs(sum(w.values()) - 1) < 1e-9 for _, w in run)
    # Deterministic for the same seed.
    again = tmp_path / "again.csv"
    assert cli("design", "--refine", tiny_model, "--runs", "6", "--proxy-steps", "600",
               "--prefix", "v", "--out", again).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def test_refine_bad_requests_are_usage_errors(cli, tiny_model, tmp_path):
    out = tmp_path / "v.csv"
    fails(cli("design", "--refine", tiny_model, "--runs", "4", "--proxy-steps", "600",
              "--out", out), 2, "--prefix X")
    fails(cli("design", "--refine", tiny_model, "--runs", "4", "--prefix", "v",
              "--out", out), 2, "--proxy-steps T")
    fails(cli("design", "--refine", tiny_model, "--runs", "1", "--proxy-steps", "600",
              "--prefix", "v", "--out", out), 2, "at least 2 runs")
    fails(cli("design", "--refine", tiny_model, "--static", "--runs", "4", "--proxy-steps",
              "600", "--prefix", "v", "--out", out), 2, "drop --prior, --static")
    fails(cli("design", "--refine", tiny_model, "--runs", "4", "--proxy-steps", "600",
              "--prefix", "v", "--out", tiny_model / "model.json"), 2)
    fails(cli("design", "--runs", "4", "--proxy-steps", "600", "--out", out), 2, "--prior FILE")
    assert not out.exists()


def test_two_rounds_end_to_end_the_verification_runs_pick_the_form(cli, tmp_path):
    """simulate -> ingest -> fit -> design --refine -> simulate --world -> ingest --append ->
    fit --verify-prefix: the second round trains in the first round's world and its held-out
    error decides `auto`."""
    first, store, model = tmp_path / "w1", tmp_path / "store", tmp_path / "model"
    steps = ("--max-rounds", "60", "--folds", "3")
    assert cli("simulate", "--runs", "36", "--domains", "3", "--seed", "5", "--out",
               first).exit_code == 0
    assert cli("ingest", first / "logs", "--out", store).exit_code == 0
    assert cli("fit", store, "--out", model, *steps).exit_code == 0
    design = tmp_path / "v.csv"
    result = cli("design", "--refine", model, "--runs", "6", "--proxy-steps", "1000",
                 "--prefix", "v", "--out", design, "--seed", "1")
    assert result.exit_code == 0, result.output
    second = tmp_path / "w2"
    result = cli("simulate", "--mixtures", design, "--world", first / "world.json",
                 "--seed", "6", "--out", second)
    assert result.exit_code == 0, result.output
    assert (second / "world.json").read_bytes() == (first / "world.json").read_bytes()
    assert cli("ingest", second / "logs", "--out", store, "--append").exit_code == 0
    refit = tmp_path / "model2"
    result = cli("fit", store, "--out", refit, "--verify-prefix", "v", *steps)
    assert result.exit_code == 0, result.output
    report = json.loads((refit / "model.json").read_text())["report"]
    assert "verification runs" in report["choice"]["reason"]
    assert all("verification_rollout" in e for e in report["evidence"]["forms"].values())
    # What the verification runs observed goes to the guard, which lets it overrule the model.
    observed = report["verification"]
    assert observed["n_dynamic"] == 3 and observed["n_static"] == 3 and observed["sd"] > 0
    plan = json.loads(cli("schedule", refit, "--json", "--candidates", "2000").stdout)
    assert "verification runs" in plan["provenance"]["guard"]["reason"]
    fails(cli("simulate", "--world", first / "world.json", "--runs", "3", "--out",
              tmp_path / "w3"), 2, "give --mixtures")
