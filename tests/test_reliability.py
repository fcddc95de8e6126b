"""Reliability: killed writers, concurrent ingests, corrupt or foreign inputs.

What regmixd promises about files: docs/reference/files.md.

Subprocess tests run `python -m regmixd_cli` for real, so SIGKILL and file locks are the
operating system's, not simulated.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regmixd_cli.cli import app
from regmixd_cli.files import atomic_dir, clean_stale_temps
from regmixd_cli.store.files import MANIFEST_FILE, lock_store, read_store

DOMAINS = ("arxiv", "github", "pile_cc")
TARGET = "val/pile_cc"
POLL = 0.005
WAIT = 120.0  # generous: two shared cores; never asserted as a speed


# --------------------------------------------------------------------------- helpers


def write_log(path: Path, runs: range, steps: int = 10, every: int = 100) -> Path:
    """A native JSONL log: one mixture line and `steps` evaluations per run."""
    lines = []
    for i in runs:
        a = 0.1 + 0.8 * ((i * 37) % 100) / 100
        b = (1 - a) * (0.2 + 0.6 * ((i * 53) % 100) / 100)
        mix = {"arxiv": round(a, 4), "github": round(b, 4), "pile_cc": round(1 - a - b, 4)}
        mix["pile_cc"] = round(1 - mix["arxiv"] - mix["github"], 4)
        lines.append(json.dumps({"run": f"r{i:05d}", "mixture": mix}))
        for s in range(1, steps + 1):
            loss = 3 + 2 / s + (a - 0.4) ** 2 + 0.5 * (b - 0.3) ** 2
            lines.append(json.dumps({"run": f"r{i:05d}", "step": s * every,
                                     TARGET: round(loss, 6), "train/loss": round(loss + .1, 6)}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def regmixd(*args: object, **kwargs) -> subprocess.Popen:
    """`python -m regmixd_cli ARGS` as a child process (stdout/stderr to pipes by default)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "regmixd_cli", *map(str, args)], **kwargs)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Wait for a child; its exit code and stderr (pipes closed)."""
    _, stderr = proc.communicate(timeout=WAIT)
    return proc.returncode, (stderr or b"").decode()


def snapshot(directory: Path) -> dict[str, str]:
    """sha256 of every file under a directory, by relative path."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def temps(parent: Path, name: str) -> list[Path]:
    """Temporary siblings of `name` (`.NAME.<pid>.<random>.tmp`/`.old`)."""
    return sorted(p for p in parent.iterdir()
                  if p.name.startswith(f".{name}.") and p.name.endswith((".tmp", ".old")))


def kill_when(proc: subprocess.Popen, ready) -> None:
    """SIGKILL `proc` as soon as `ready()` holds; fail if it finished first."""
    deadline = time.monotonic() + WAIT
    while not ready():
        assert proc.poll() is None, f"finished before it could be killed: {finish(proc)}"
        assert time.monotonic() < deadline, "never reached the point to kill at"
        time.sleep(POLL)
    proc.send_signal(signal.SIGKILL)
    assert finish(proc)[0] == -signal.SIGKILL


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """A store, a model and a schedule built once for the corrupt-input cases."""
    root = tmp_path_factory.mktemp("base")
    runner = CliRunner()
    log = write_log(root / "log.jsonl", range(24))
    for args in (
        ("ingest", log, "--out", root / "store"),
        ("fit", root / "store", "--out", root / "model", "--switch-points", "3", "--folds",
         "2", "--max-rounds", "5"),
        ("schedule", root / "model", "--out", root / "schedule.json", "--candidates", "300"),
    ):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    return {"root": root, "log": log, "store": root / "store", "model": root / "model",
            "schedule": root / "schedule.json"}


# --------------------------------------------------------------------------- SIGKILL


@pytest.mark.slow
def test_sigkill_during_ingest_keeps_the_previous_store(tmp_path):
    store = tmp_path / "store"
    small = write_log(tmp_path / "small.jsonl", range(8))
    assert finish(regmixd("ingest", small, "--out", store))[0] == 0
    before = snapshot(store)
    big = write_log(tmp_path / "big.jsonl", range(4000), steps=40)  # ~30 MB, 320k lines

    proc = regmixd("ingest", big, "--out", store, "--append")
    kill_when(proc, lambda: bool(temps(tmp_path, "store")))

    assert snapshot(store) == before  # every byte as it was
    assert read_store(store).n_runs == 8
    leftovers = temps(tmp_path, "store")
    assert leftovers  # the killed writer could not clean up ...
    assert finish(regmixd("ingest", small, "--out", store))[0] == 0
    assert temps(tmp_path, "store") == []  # ... the next write to --out did
    assert read_store(store).n_runs == 8


# Emulates a slow disk: writing model.json (the last file of a model) takes a minute, so the
# kill lands after the boosters are written and before the directory is complete.
SLOW_MODEL_WRITE = """
import sys, time
import regmixd_cli.fit.files as files
real = files.write_json
def slow(path, data):
    time.sleep(60)
    real(path, data)
files.write_json = slow
from regmixd_cli.cli import app
sys.argv = ["regmixd", *sys.argv[1:]]
app()
"""


@pytest.mark.slow
def test_sigkill_during_fit_keeps_the_previous_model(base, tmp_path):
    from regmixd_cli.fit.files import load_model

    model = tmp_path / "model"
    first = regmixd("fit", base["store"], "--out", model, "--switch-points", "3", "--folds", "2",
                    "--max-rounds", "5")
    assert finish(first)[0] == 0
    before = snapshot(model)

    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_MODEL_WRITE, "fit", str(base["store"]), "--out", str(model),
         "--switch-points", "2", "--folds", "2", "--max-rounds", "5", "--seed", "7"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    kill_when(proc, lambda: any(p.is_dir() and any(p.glob("*.ubj"))
                                for p in temps(tmp_path, "model")))

    assert snapshot(model) == before
    assert load_model(model).n_switch_points == 3
    again = regmixd("fit", base["store"], "--out", model, "--switch-points", "2", "--folds", "2",
                    "--max-rounds", "5")
    assert finish(again)[0] == 0
    assert temps(tmp_path, "model") == []
    assert load_model(model).n_switch_points == 2


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_directory_caught_between_renames_is_put_back(tmp_path):
    # The fallback swap (no renameat2) moves the old directory aside, then renames the new one
    # in; a kill in between leaves `.NAME.<pid>.x.old/previous`, which the next write restores.
    out = tmp_path / "store"
    old = tmp_path / f".store.{_dead_pid()}.abcd1234.old"
    (old / "previous").mkdir(parents=True)
    (old / "previous" / "manifest.json").write_text("{}")
    stale = tmp_path / f".store.{_dead_pid()}.efgh5678.tmp"
    stale.mkdir()
    live = tmp_path / f".store.{os.getppid()}.ijkl9012.tmp"  # a live writer's: kept
    live.mkdir()
    foreign = tmp_path / ".store.notes.txt"  # not ours: kept
    foreign.write_text("mine")

    clean_stale_temps(out)

    assert (out / "manifest.json").read_text() == "{}"
    assert not old.exists() and not stale.exists()
    assert live.exists() and foreign.exists()


def test_fallback_swap_without_renameat2(tmp_path, monkeypatch):
    import regmixd_cli.files as io

    monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    for text in ("one", "two"):
        with atomic_dir(out) as tmp:
            (tmp / "f").write_text(text)
    assert (out / "f").read_text() == "two"
    assert temps(tmp_path, "out") == []


def test_a_failed_block_leaves_the_previous_directory(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("kept")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "f").write_text("half")
        raise RuntimeError("killed")
    assert (out / "f").read_text() == "kept"
    assert temps(tmp_path, "out") == []


# --------------------------------------------------------------------------- concurrency


@pytest.mark.slow
def test_two_concurrent_appends_both_land(tmp_path):
    store = tmp_path / "store"
    seed = write_log(tmp_path / "seed.jsonl", range(0, 4))
    assert finish(regmixd("ingest", seed, "--out", store))[0] == 0
    a = write_log(tmp_path / "a.jsonl", range(100, 400), steps=20)
    b = write_log(tmp_path / "b.jsonl", range(500, 800), steps=20)

    procs = [regmixd("ingest", log, "--out", store, "--append") for log in (a, b)]
    outputs = [finish(p) for p in procs]

    assert [code for code, _ in outputs] == [0, 0], outputs
    loaded = read_store(store)
    assert loaded.n_runs == 4 + 300 + 300
    assert {i["path"] for i in loaded.manifest["inputs"]} == {str(seed), str(a), str(b)}
    assert not (tmp_path / ".store.lock").exists()
    assert temps(tmp_path, "store") == []


@pytest.mark.slow
def test_a_second_writer_waits_for_the_lock_and_says_so(tmp_path):
    store = tmp_path / "store"
    log = write_log(tmp_path / "a.jsonl", range(6))
    errors = tmp_path / "stderr.txt"
    with lock_store(store), open(errors, "wb") as sink:
        proc = regmixd("ingest", log, "--out", store, "--append", stderr=sink)
        deadline = time.monotonic() + WAIT
        while "another regmixd is writing" not in errors.read_text():
            assert proc.poll() is None, errors.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert proc.poll() is None  # still waiting while the lock is held
        assert not store.exists()
    assert finish(proc)[0] == 0, errors.read_text()
    assert read_store(store).n_runs == 6


# --------------------------------------------------------------------------- corrupt inputs


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


MODEL_CORRUPTIONS = {
    "truncated model.json": lambda m: (m / "model.json").write_text(
        (m / "model.json").read_text()[:300]),
    "empty model.json": lambda m: (m / "model.json").write_text(""),
    "binary model.json": lambda m: (m / "model.json").write_bytes(bytes(range(256)) * 3),
    "model.json of another schema": lambda m: _edit_json(
        m / "model.json", lambda d: d.update(schema_version="regmixd.model/v9")),
    "edited domains": lambda m: _edit_json(m / "model.json", lambda d: d.update(domains=["a"])),
    "edited grid": lambda m: _edit_json(m / "model.json", lambda d: d.update(grid=[3, 2, 1])),
    "edited loss ranges": lambda m: _edit_json(
        m / "model.json", lambda d: d.update(loss_ranges=None)),
    "truncated booster": lambda m: (m / "endpoint.ubj").write_bytes(
        (m / "endpoint.ubj").read_bytes()[:100]),
    "truncated booster, hash updated": lambda m: _truncate_and_rehash(m, "endpoint.ubj"),
    "missing booster": lambda m: (m / "endpoint.ubj").unlink(),
}


def _truncate_and_rehash(model: Path, name: str) -> None:
    data = (model / name).read_bytes()[:200]
    (model / name).write_bytes(data)
    _edit_json(model / "model.json",
               lambda d: d["files"].update({name: hashlib.sha256(data).hexdigest()}))


@pytest.mark.parametrize("case", sorted(MODEL_CORRUPTIONS))
def test_corrupt_model_is_exit_4_for_every_command(cli, base, tmp_path, case):
    model = _copy(base["model"], tmp_path / "model")
    MODEL_CORRUPTIONS[case](model)
    for args in (
        ("schedule", model, "--out", tmp_path / "s.json", "--candidates", "200"),
        ("schedule", model, "--static", "--out", tmp_path / "s.json", "--candidates", "200"),
        ("online", model, "--step", "300", "--loss", "3.5", "--target-steps", "1000",
         "--candidates", "200"),
        ("evaluate", model, base["store"]),
        ("show", model),
    ):
        result = cli(*args)
        assert result.exit_code == 4, (case, args[0], result.output)
        assert result.stderr.startswith("Error: "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert str(model) in result.stderr
    assert not (tmp_path / "s.json").exists()


def _edit_parquet(store: Path) -> None:
    data = bytearray((store / "runs.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (store / "runs.parquet").write_bytes(bytes(data))


def _garbage_rehashed(store: Path) -> None:
    (store / "runs.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    digest = hashlib.sha256((store / "runs.parquet").read_bytes()).hexdigest()
    _edit_json(store / MANIFEST_FILE, lambda d: d["files"].update({"runs.parquet": digest}))


STORE_CORRUPTIONS = {
    "edited parquet": _edit_parquet,
    "missing parquet": lambda s: (s / "trajectories.parquet").unlink(),
    "garbage parquet, hash updated": _garbage_rehashed,
    "truncated manifest": lambda s: (s / MANIFEST_FILE).write_text(
        (s / MANIFEST_FILE).read_text()[:80]),
    "manifest not an object": lambda s: (s / MANIFEST_FILE).write_text("[]"),
    "manifest without domains": lambda s: _edit_json(s / MANIFEST_FILE, lambda d: d.pop("domains")),
    "manifest domains a number": lambda s: _edit_json(s / MANIFEST_FILE,
                                                      lambda d: d.update(domains=5)),
    "manifest files a list": lambda s: _edit_json(s / MANIFEST_FILE,
                                                  lambda d: d.update(files=[1])),
    "manifest row count edited": lambda s: _edit_json(s / MANIFEST_FILE,
                                                      lambda d: d.update(n_rows=1)),
    "manifest of another schema": lambda s: _edit_json(
        s / MANIFEST_FILE, lambda d: d.update(schema_version="regmixd.store/v0")),
}


@pytest.mark.parametrize("case", sorted(STORE_CORRUPTIONS))
def test_store_not_matching_its_manifest_is_exit_3(cli, base, tmp_path, case):
    store = _copy(base["store"], tmp_path / "store")
    STORE_CORRUPTIONS[case](store)
    before = snapshot(store)
    for args in (
        ("fit", store, "--out", tmp_path / "m", "--max-rounds", "3", "--folds", "2"),
        ("evaluate", base["model"], store),
        ("show", store),
        ("ingest", base["log"], "--append", "--out", store),
    ):
        result = cli(*args)
        assert result.exit_code == 3, (case, args[0], result.output)
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert str(store) in result.stderr
    assert snapshot(store) == before  # a failed --append leaves the store alone
    assert not (tmp_path / "m").exists()


def test_model_and_store_swapped(cli, base, tmp_path):
    cases = (
        (("fit", base["model"], "--out", tmp_path / "m"), 3, base["model"]),
        (("evaluate", base["store"], base["store"]), 4, base["store"]),
        (("schedule", base["store"], "--out", tmp_path / "s.json"), 4, base["store"]),
        (("online", base["store"], "--step", "1", "--loss", "3", "--target-steps", "9"), 4,
         base["store"]),
        (("ingest", base["log"], "--out", base["model"]), 3, base["model"]),
        (("export", base["model"], "--to", "csv"), 3, base["model"]),
    )
    for args, code, named in cases:
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.startswith("Error: ") and str(named) in result.stderr


def _schedule_cases(base: dict[str, Path], tmp: Path) -> dict[str, Path]:
    text = base["schedule"].read_text()
    data = json.loads(text)
    files = {
        "another schema version": json.dumps({**data, "schema_version": "regmixd.schedule/v2"}),
        "truncated": text[:120],
        "empty": "",
        "weights not summing to 1": text.replace('"weights": {', '"weights": {"x": 1, ', 1),
        "deeply nested": "[" * 100_000 + "]" * 100_000,
        "huge integer": text.replace('"target_steps": ', '"target_steps": ' + "9" * 5000, 1),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp / f"{name.replace(' ', '_')}.json"
        paths[name].write_text(content)
    paths["UTF-16"] = tmp / "utf16.json"
    paths["UTF-16"].write_bytes(text.encode("utf-16"))
    paths["binary"] = tmp / "binary.json"
    paths["binary"].write_bytes(bytes(range(256)) * 4)
    return paths


def test_bad_schedule_files_are_exit_3(cli, base, tmp_path):
    world = tmp_path / "world.json"
    world.write_text("{}")
    for name, path in _schedule_cases(base, tmp_path).items():
        for args in (("export", path, "--to", "megatron"), ("show", path)):
            result = cli(*args)
            assert result.exit_code == 3, (name, args[0], result.output)
            assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
            assert str(path) in result.stderr, result.stderr
    utf16 = cli("show", tmp_path / "utf16.json")
    assert "UTF-16" in utf16.stderr and "iconv" in utf16.stderr


def test_corrupt_world_is_exit_3(cli, base, tmp_path):
    cases = {
        "truncated.json": '{"schema_version": "regmixd.world/v1", "domains": ["a", ',
        "binary.json": bytes(range(256)).decode("latin-1"),
        "list.json": "[1, 2, 3]",
        "other.json": json.dumps({"schema_version": "regmixd.world/v2"}),
        "nested.json": "[" * 50_000 + "]" * 50_000,
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content.encode("latin-1"))
        for args in (("simulate", "score", path, base["schedule"]),
                     ("simulate", "oracle", path, "--switch-points", "1")):
            result = cli(*args)
            assert result.exit_code == 3, (name, args[1], result.output)
            assert result.stderr.startswith("Error: ") and str(path) in result.stderr


LOG_CASES = {
    "binary garbage": (bytes(range(256)) * 40, "binary data"),
    "random bytes, no NUL": (bytes(range(1, 256)) * 40, "format"),
    "empty": (b"", "empty"),
    "blank lines": (b"\n\n   \n", "empty"),
    "UTF-16 JSONL": (b'{"run": "a", "step": 1, "val/x": 2.0}\n'.decode().encode("utf-16"),
                     "UTF-16"),
    "UTF-16 CSV": ("run,step,metric,value\na,1,val/x,2.0\n".encode("utf-16"), "UTF-16"),
    "UTF-32 CSV": ("run,step,metric,value\na,1,val/x,2.0\n".encode("utf-32"), "UTF-32"),
    "Latin-1 JSONL": ('{"run": "r\xe9sum\xe9", "mixture": {"a": 1.0}}\n'.encode("latin-1"),
                      "Latin-1"),
    "Latin-1 CSV": ("run,step,metric,value\nr\xe9,1,val/x,2.0\n".encode("latin-1"), "Latin-1"),
    "deeply nested JSON array": (b"[" * 50_000 + b"]" * 50_000 + b"\n", "format"),
    "deeply nested mixture": (b'{"run": "a", "mixture": ' + b"[" * 50_000 + b"]" * 50_000
                              + b"}\n", "malformed"),
    "huge integer": (b'{"run": "a", "step": ' + b"9" * 5000 + b', "val/x": 1}\n', "malformed"),
    "CSV field over the csv module's limit": (b"run," + b"x" * 200_000 + b"\n", ""),
}


@pytest.mark.parametrize("case", sorted(LOG_CASES))
@pytest.mark.parametrize("fmt", ["auto", "jsonl", "csv", "regmix", "hf", "wandb"])
def test_bad_logs_are_exit_3_with_one_line(cli, tmp_path, case, fmt):
    content, hint = LOG_CASES[case]
    log = tmp_path / "log.jsonl"
    log.write_bytes(content)
    result = cli("ingest", log, "--format", fmt, "--out", tmp_path / "store")
    assert result.exit_code == 3, (case, fmt, result.output)
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert str(log) in result.stderr
    if fmt == "auto":
        assert hint in result.stderr, result.stderr
    assert not (tmp_path / "store").exists()


def test_utf8_with_bom_is_accepted(cli, tmp_path):
    bom = b"\xef\xbb\xbf"
    log = write_log(tmp_path / "log.jsonl", range(3))
    log.write_bytes(bom + log.read_bytes())
    csv = tmp_path / "log.csv"
    csv.write_bytes(bom + b"run,step,metric,value\nrun_a,100,val/pile_cc,3.5\n")
    state = tmp_path / "run_a" / "trainer_state.json"
    state.parent.mkdir()
    state.write_bytes(bom + json.dumps(
        {"log_history": [{"step": 10, "eval_pile_cc_loss": 3.0}]}).encode())
    mixtures = tmp_path / "mix.json"
    mixtures.write_bytes(bom + json.dumps({"run_a": {"a": 0.5, "b": 0.5}}).encode())
    for args in ((log,), (csv, "--mixtures", mixtures), (state, "--mixtures", mixtures)):
        result = cli("ingest", *args, "--out", tmp_path / f"s_{args[0].stem}")
        assert result.exit_code == 0, (args, result.output)
        assert read_store(tmp_path / f"s_{args[0].stem}").n_runs == (3 if args[0] == log else 1)


def test_non_ascii_run_names_in_utf8_are_kept(cli, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"run": "résumé-α", "mixture": {"a": 0.5, "b": 0.5}}\n'
        '{"run": "résumé-α", "step": 10, "val/x": 3.0}\n', encoding="utf-8")
    result = cli("ingest", log, "--out", tmp_path / "store")
    assert result.exit_code == 0, result.output
    assert read_store(tmp_path / "store").runs.get_column("run").to_list() == ["résumé-α"]


@pytest.mark.slow
def test_three_thousand_small_files_under_a_low_file_limit(tmp_path):
    import resource

    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(3000):
        lines = [json.dumps({"run": f"r{i:04d}", "mixture": {"a": 0.25, "b": 0.75}})]
        lines += [json.dumps({"run": f"r{i:04d}", "step": s, TARGET: 3 + 1 / s})
                  for s in (100, 200, 300)]
        (logs / f"part-{i:04d}.jsonl").write_text("\n".join(lines) + "\n")

    def low_limit() -> None:  # far fewer descriptors than files: a leak would fail
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    proc = regmixd("ingest", logs, "--out", tmp_path / "store", preexec_fn=low_limit)
    code, stderr = finish(proc)
    assert code == 0, stderr
    store = read_store(tmp_path / "store")
    assert store.n_runs == 3000
    assert len(store.manifest["inputs"]) == 3000

