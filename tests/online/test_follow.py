"""Follow mode: parsing a growing log (pure), and `regmixd online --follow` against live writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from regmixd_cli.errors import InputError, UsageError
from regmixd_cli.online.follow import (
    LogCursor,
    detect_log_format,
    metric_keys,
    parse_chunk,
    parse_trainer_state,
)

# --------------------------------------------------------------------------- pure parsing


def jsonl(data: bytes, cursor: LogCursor | None = None, metric: str = "val/loss"):
    return parse_chunk(data, cursor or LogCursor(), fmt="jsonl", metric=metric, name="log.jsonl")


def test_only_complete_lines_are_consumed():
    first = b'{"run": "r", "step": 100, "val/loss": 4.0}\n'
    partial = b'{"run": "r", "step": 2'
    chunk = jsonl(first + partial)
    assert [(o.step, o.value, o.where) for o in chunk.observations] == [(100, 4.0, "log.jsonl:1")]
    assert chunk.cursor.offset == len(first) and chunk.cursor.line == 1
    assert chunk.warnings == ()  # a half-written line is not an error: it waits
    rest = partial + b'00, "val/loss": 3.5}\n'
    chunk = jsonl(rest, chunk.cursor)
    assert [(o.step, o.value, o.where) for o in chunk.observations] == [(200, 3.5, "log.jsonl:2")]
    assert chunk.cursor.offset == len(first) + len(rest)


def test_malformed_lines_are_skipped_with_a_warning():
    data = (
        b'{"run": "r", "mixture": {"a": 1.0}}\n'
        b"not json\n"
        b"[1, 2]\n"
        b'{"run": "r", "step": 100, "train/loss": 4.1}\n'
        b'{"run": "r", "step": 150, "val/loss": null}\n'
        b'{"run": "r", "step": 200, "val/loss": NaN}\n'
        b'{"run": "r", "step": 2.5, "val/loss": 3.9}\n'
        b"\xff\xfe\n"
        b"\n"
        b'{"run": "r", "step": 300, "val/loss": 3.8}\n'
    )
    chunk = jsonl(data)
    assert [(o.step, o.value) for o in chunk.observations] == [(300, 3.8)]
    assert [w.split(":")[1] for w in chunk.warnings] == ["2", "3", "6", "7", "8"]
    assert "malformed JSON" in chunk.warnings[0] and "not finite" in chunk.warnings[2]
    assert chunk.metrics_seen == {"train/loss", "val/loss"}
    assert chunk.cursor.line == 10


def test_the_first_run_is_followed_unless_one_is_named():
    data = (
        b'{"run": "a", "step": 100, "val/loss": 4.0}\n'
        b'{"run": "b", "step": 100, "val/loss": 9.0}\n'
        b'{"run": "a", "step": 200, "val/loss": 3.9}\n'
    )
    chunk = jsonl(data)
    assert chunk.cursor.run == "a" and chunk.other_runs == {"b"}
    assert [o.value for o in chunk.observations] == [4.0, 3.9]
    chosen = jsonl(data, LogCursor(run="b"))
    assert [o.value for o in chosen.observations] == [9.0]


def test_hf_style_metric_names_are_found():
    assert metric_keys("valid") == ("valid", "eval_valid_loss", "eval_valid")
    chunk = jsonl(b'{"step": 10, "eval_valid_loss": 2.5}\n', metric="valid")
    assert [o.value for o in chunk.observations] == [2.5]


def csv_chunk(data: bytes, cursor: LogCursor | None = None, metric: str = "val/loss"):
    return parse_chunk(data, cursor or LogCursor(), fmt="csv", metric=metric, name="log.csv")


def test_csv_wide_with_empty_cells_and_a_split_header():
    header = b"run,step,train/loss,val/loss\n"
    chunk = csv_chunk(header[:10])
    assert chunk.cursor.offset == 0 and chunk.cursor.header is None
    rows = b"r,50,4.5,\nr,100,4.2,4.0\nr,150,oops\nr,200,4.0,3.7\n"
    chunk = csv_chunk(header + rows)
    assert chunk.cursor.header == ("run", "step", "train/loss", "val/loss")
    assert [(o.step, o.value) for o in chunk.observations] == [(100, 4.0), (200, 3.7)]
    [warning] = chunk.warnings
    assert warning.startswith("log.csv:4:") and "3 fields" in warning


def test_csv_long():
    data = b"run,step,metric,value\nr,100,train/loss,4.1\nr,100,val/loss,4.0\nr,200,val/loss,x\n"
    chunk = csv_chunk(data)
    assert [(o.step, o.value) for o in chunk.observations] == [(100, 4.0)]
    assert "not a number" in chunk.warnings[0]


def test_csv_header_without_the_metric_is_an_input_error():
    with pytest.raises(InputError, match=r"log.csv:1: .*no column for metric 'val/loss'"):
        csv_chunk(b"run,step,train/loss\n")


def test_trainer_state_whole_and_half_written():
    state = {
        "global_step": 200,
        "log_history": [
            {"step": 50, "loss": 4.4},
            {"step": 100, "eval_valid_loss": 4.0, "epoch": 0.1},
            {"step": 200, "eval_valid_loss": 3.6},
        ],
    }
    text = json.dumps(state)
    observations = parse_trainer_state(text, "valid", "trainer_state.json")
    assert [(o.step, o.value) for o in observations] == [(100, 4.0), (200, 3.6)]
    assert parse_trainer_state(text[: len(text) // 2], "valid", "x") is None
    assert parse_trainer_state("{}", "valid", "x") is None


def test_detect_format():
    assert detect_log_format(Path("run/log.jsonl")) == "jsonl"
    assert detect_log_format(Path("metrics.CSV")) == "csv"
    assert detect_log_format(Path("ckpt/trainer_state.json")) == "hf"
    assert detect_log_format(Path("log.txt"), "csv") == "csv"
    with pytest.raises(UsageError, match="``format``"):
        detect_log_format(Path("x"), "yaml")


# --------------------------------------------------------------------------- the watcher

# The tiny model: T_p = 600 with switch points at 150, 300, 450 -> 1500, 3000, 4500 of 6000.
SWITCHES = (1500, 3000, 4500)


@pytest.fixture(scope="module")
def model_dir(tiny_model: Path) -> Path:
    """The session's tiny model (tests/conftest.py), fitted once for every module."""
    return tiny_model


def obs(step: int, loss: float, run: str = "big") -> str:
    return json.dumps({"run": run, "step": step, "val/loss": loss}) + "\n"


def append_later(path: Path, pieces: list[str], delay: float = 0.15) -> threading.Thread:
    """A background trainer: appends each piece after `delay` seconds."""

    def write() -> None:
        for piece in pieces:
            time.sleep(delay)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(piece)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def follow(cli, model_dir, log, *args):
    return cli(
        "online",
        model_dir,
        "--follow",
        log,
        "--target-steps",
        "6000",
        "--candidates",
        "2000",
        "--poll",
        "0.03",
        *args,
    )


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_follow_a_growing_log_with_partial_and_bad_lines(cli, model_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    writer = append_later(
        log,
        [
            '{"run": "big", "mixture": {"code": 0.5, "prose": 0.5}}\n' + obs(500, 4.0),
            obs(1000, 3.7),
            obs(1500, 3.5) + obs(2000, 3.4),
            '{"run": "big", "step": 31',  # a half-written line ...
            '00, "val/loss": 3.1}\n',  # ... completed later
            "garbage\n" + obs(3500, 3.0, run="other"),
            obs(4600, 2.9) + obs(5000, 2.8),
        ],
    )
    result = follow(
        cli, model_dir, log, "--timeout", "10", "--out-schedule", tmp_path / "schedule.json"
    )
    writer.join()
    assert result.exit_code == 0, result.output
    decisions = lines(result.stdout)
    assert [(d["switch"], d["step"], d["loss"]) for d in decisions] == [
        (1, 1500, 3.5),
        (2, 3100, 3.1),
        (3, 4600, 2.9),
    ]
    assert [d["start_step"] for d in decisions] == list(SWITCHES)
    assert "log.jsonl:7: malformed JSON" in result.stderr
    assert "log.jsonl:6: malformed" not in result.stderr  # the half-written line was read whole
    assert "decided from val/loss=3.1 at" in result.stderr
    assert "ignoring run 'other'" in result.stderr
    assert "all switch points decided" in result.stderr
    schedule = json.loads((tmp_path / "schedule.json").read_text())
    assert schedule["method"] == "regmix-d-online"
    assert [s["start_step"] for s in schedule["stages"]] == [0, *SWITCHES]
    assert schedule["stages"][2]["weights"] == decisions[1]["weights"]


def test_restart_with_state_neither_repeats_nor_changes(cli, model_dir, tmp_path):
    log, state = tmp_path / "log.jsonl", tmp_path / "state.json"
    log.write_text(obs(1000, 3.7) + obs(1500, 3.5))
    first = follow(cli, model_dir, log, "--state", state, "--timeout", "0.3")
    assert first.exit_code == 0, first.output
    [decision_1] = lines(first.stdout)
    assert "timed out" in first.stderr
    assert json.loads(state.read_text())["decisions"] == [decision_1]

    # The log is rewritten with another loss at 1500: the decision on record stands.
    log.write_text(obs(1000, 3.7) + obs(1500, 9.9) + obs(3000, 3.2))
    append_later(log, [obs(4500, 2.9)])
    second = follow(cli, model_dir, log, "--state", state, "--timeout", "5")
    assert second.exit_code == 0, second.output
    assert [d["switch"] for d in lines(second.stdout)] == [2, 3]
    assert "1 decision(s) restored" in second.stderr
    recorded = json.loads(state.read_text())["decisions"]
    assert recorded[0] == decision_1 and recorded[1:] == lines(second.stdout)

    # Same decisions as one uninterrupted watcher over the original log.
    fresh_log = tmp_path / "fresh.jsonl"
    fresh_log.write_text(obs(1500, 3.5) + obs(3000, 3.2) + obs(4500, 2.9))
    fresh = follow(cli, model_dir, fresh_log, "--timeout", "5")
    assert lines(fresh.stdout) == recorded

    # A third watcher has nothing left to do.
    third = follow(cli, model_dir, log, "--state", state, "--timeout", "5")
    assert third.exit_code == 0 and third.stdout == ""


def test_state_written_with_other_settings_is_refused(cli, model_dir, tmp_path):
    log, state = tmp_path / "log.jsonl", tmp_path / "state.json"
    log.write_text(obs(1500, 3.5))
    assert follow(cli, model_dir, log, "--state", state, "--timeout", "0.2").exit_code == 0
    before = state.read_bytes()
    result = follow(cli, model_dir, log, "--state", state, "--seed", "1", "--timeout", "0.2")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error:") and str(state) in result.stderr
    assert "seed" in result.stderr
    assert state.read_bytes() == before
    state.write_text("{not json")
    result = follow(cli, model_dir, log, "--state", state, "--timeout", "0.2")
    assert result.exit_code == 3 and result.stderr.startswith(f"Error: {state}:1:")


def test_timeout_without_a_log(cli, model_dir, tmp_path):
    result = follow(cli, model_dir, tmp_path / "later.jsonl", "--timeout", "0.2")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    waiting = f"Warning: {tmp_path / 'later.jsonl'} does not exist yet; waiting for it to appear"
    assert waiting in result.stderr and "timed out" in result.stderr
    assert result.stderr.index(waiting) < result.stderr.index("timed out")  # said at start
    assert result.stderr.count("does not exist yet") == 1
    assert "later.jsonl never appeared; check the --follow path" in result.stderr
    assert "no value of metric" not in result.stderr  # no metric to blame: there was no log
    assert "0 of 3 switch points decided" in result.stderr


def test_wrong_metric_is_explained_at_the_end(cli, model_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"run": "big", "step": 1500, "val/other": 3.0}) + "\n")
    result = follow(cli, model_dir, log, "--timeout", "0.2")
    assert result.exit_code == 0, result.output
    assert "no value of metric 'val/loss' was read; metrics seen: val/other" in result.stderr


def test_end_of_training_stops_the_watcher(cli, model_dir, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("run,step,val/loss\nbig,1500,3.5\nbig,6000,2.5\nbig,7000,2.4\n")
    result = follow(cli, model_dir, log, "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert [d["switch"] for d in lines(result.stdout)] == [1]
    assert "training reached step 6000" in result.stderr


def test_follow_a_trainer_state_rewritten_in_place(cli, model_dir, tmp_path):
    path = tmp_path / "trainer_state.json"

    def state(*evals: tuple[int, float]) -> str:
        history = [{"step": s, "loss": 4.5} for s in (100, 200)]
        history += [{"step": s, "eval_valid_loss": v} for s, v in evals]
        return json.dumps({"global_step": max(s for s, _ in evals), "log_history": history})

    path.write_text(state((1000, 3.8)))
    texts = [
        state((1000, 3.8), (1500, 3.5)),
        state((1000, 3.8), (1500, 3.5), (3000, 3.2)),
        state((1000, 3.8), (1500, 3.5), (3000, 3.2), (4500, 2.9)),
    ]

    def rewrite() -> None:
        for text in texts:
            time.sleep(0.15)
            with open(path, "w", encoding="utf-8") as handle:  # in place, like the Trainer
                handle.write(text[: len(text) // 2])
                handle.flush()
                time.sleep(0.15)  # a reader sees half a file here
                handle.write(text[len(text) // 2 :])

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    result = follow(cli, model_dir, path, "--metric", "valid", "--timeout", "10")
    writer.join()
    assert result.exit_code == 0, result.output
    assert [(d["switch"], d["step"]) for d in lines(result.stdout)] == [
        (1, 1500),
        (2, 3000),
        (3, 4500),
    ]
    assert "(hf)" in result.stderr
    assert "not valid trainer_state JSON yet; retrying" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_ends_the_watcher_cleanly(model_dir, tmp_path, sig):
    log, state, schedule = tmp_path / "log.jsonl", tmp_path / "state.json", tmp_path / "s.json"
    log.write_text(obs(1500, 3.5))
    command = [
        sys.executable,
        "-m",
        "regmixd_cli",
        "online",
        str(model_dir),
        "--follow",
        str(log),
        "--target-steps",
        "6000",
        "--candidates",
        "2000",
        "--poll",
        "0.05",
        "--timeout",
        "60",
        "--state",
        str(state),
        "--out-schedule",
        str(schedule),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        first = proc.stdout.readline()  # blocks until the first decision is out
        assert json.loads(first)["switch"] == 1
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert stdout == ""
    assert f"stopped by {sig.name}" in stderr
    assert [d["switch"] for d in json.loads(state.read_text())["decisions"]] == [1]
    assert json.loads(schedule.read_text())["method"] == "regmix-d-online"


def test_a_replaced_log_is_read_again_from_the_start(cli, model_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(obs(1000, 3.7) + obs(1500, 3.5) + obs(2000, 3.4) + obs(2500, 3.3))

    def rotate() -> None:
        time.sleep(0.3)
        fresh = tmp_path / "fresh.jsonl"
        fresh.write_text(obs(3000, 3.2) + obs(4500, 2.9))  # shorter than what was read
        os.replace(fresh, log)

    writer = threading.Thread(target=rotate, daemon=True)
    writer.start()
    result = follow(cli, model_dir, log, "--timeout", "5")
    writer.join()
    assert result.exit_code == 0, result.output
    assert [d["switch"] for d in lines(result.stdout)] == [1, 2, 3]
    assert "truncated or replaced" in result.stderr


# --------------------------------------------------------------------------- new-user review fixes


def test_records_count_the_followed_runs_lines_with_a_step():
    data = (
        b'{"run": "r", "mixture": {"a": 1.0}}\n'
        b'{"run": "r", "step": 100, "train/loss": 4.1}\n'
        b'{"run": "x", "step": 100, "train/loss": 9.1}\n'
        b'{"run": "r", "step": 200, "val/loss": 3.8}\n'
        b'{"run": "r", "step": 3'
    )
    assert jsonl(data).records == 2


def watcher(model_dir: Path, log: Path, *args: str | Path, deadline: float = 60.0):
    """Run a watcher in a subprocess, killed after `deadline` s: a hang fails, never blocks."""
    command = [
        sys.executable, "-m", "regmixd_cli", "online", str(model_dir), "--follow", str(log),
        "--target-steps", "6000", "--candidates", "2000", "--poll", "0.03", *map(str, args),
    ]  # fmt: skip
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=deadline)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the watcher was still running after {deadline:g} s: --timeout was ignored")


def test_a_half_written_last_line_does_not_hold_off_the_timeout(model_dir, tmp_path):
    # A trainer that died mid-write: the unfinished line waits, but the log is idle.
    log, state = tmp_path / "partial.jsonl", tmp_path / "state.json"
    log.write_text(obs(1500, 3.5) + '{"run": "big", "step": 20')
    result = watcher(model_dir, log, "--timeout", "0.3", "--state", state)
    assert result.returncode == 0, result.stderr
    assert [d["switch"] for d in lines(result.stdout)] == [1]
    assert "timed out" in result.stderr
    assert f"{log}:2: the last line is incomplete (no newline)" in result.stderr
    assert [d["switch"] for d in json.loads(state.read_text())["decisions"]] == [1]


def test_growth_is_judged_by_size_not_by_the_unread_tail(tmp_path):
    from regmixd_cli.online.follow import LogSource

    log = tmp_path / "log.jsonl"
    log.write_text(obs(1500, 3.5) + '{"run": "big", "step": 20')
    source = LogSource(log, "jsonl", "val/loss", None)
    observations, grew = source.read()
    assert [o.step for o in observations] == [1500] and grew
    assert source.read() == ((), False)  # the same unfinished line is not growth
    assert source.partial_line() == 2
    with open(log, "a", encoding="utf-8") as handle:
        handle.write('00, "val/loss": 3.1}\n')
    observations, grew = source.read()
    assert [o.step for o in observations] == [2000] and grew
    assert source.partial_line() is None


def test_a_trainer_state_left_invalid_is_not_growth(tmp_path):
    from regmixd_cli.online.follow import LogSource

    path = tmp_path / "trainer_state.json"
    path.write_text('{"log_history": [{"step": 100, "eval_valid_loss": 4.0}')
    source = LogSource(path, "hf", "valid", None)
    assert source.read() == ((), True)  # a new version, invalid: warned once
    assert source.read() == ((), False)  # the same version again: idle, so --timeout runs
    path.write_text('{"log_history": [{"step": 100, "eval_valid_loss": 4.0}]}')
    observations, grew = source.read()
    assert [o.step for o in observations] == [100] and grew


@pytest.mark.parametrize("option", ["--out-schedule", "--state"])
def test_an_output_path_that_is_a_directory_is_refused_before_watching(
    cli, model_dir, tmp_path, option
):
    log, target = tmp_path / "log.jsonl", tmp_path / "existing_dir"
    log.write_text(obs(1500, 3.5))
    target.mkdir()
    result = follow(cli, model_dir, log, "--timeout", "0.2", option, target)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("Error:") and str(target) in result.stderr
    assert option in result.stderr and "directory" in result.stderr
    assert result.stdout == ""  # nothing was decided before the refusal
    assert "Following" not in result.stderr


def test_an_output_path_under_a_file_is_refused(cli, model_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(obs(1500, 3.5))
    result = follow(cli, model_dir, log, "--timeout", "0.2", "--out-schedule", log / "s.json")
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("Error:") and str(log) in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--out-schedule", "{log}"), "--out-schedule {log} is the followed log"),
        (("--state", "{tmp}/s.json", "--out-schedule", "{tmp}/s.json"), "two different files"),
    ],
)
def test_output_paths_must_not_collide(cli, model_dir, tmp_path, args, message):
    log = tmp_path / "log.jsonl"
    log.write_text(obs(1500, 3.5))
    before = log.read_bytes()
    fill = {"log": log, "tmp": tmp_path}
    result = follow(cli, model_dir, log, "--timeout", "0.2", *(a.format(**fill) for a in args))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error:") and message.format(**fill) in result.stderr
    assert log.read_bytes() == before


def test_a_misnamed_metric_is_flagged_as_soon_as_lines_are_read(cli, model_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(obs(1500, 3.5))  # one line, with val/loss
    result = follow(cli, model_dir, log, "--metric", "val/los", "--timeout", "0.2")
    assert result.exit_code == 0, result.output  # a warning, not an error: it may appear later
    hint = "no value of metric 'val/los' in the 1 line(s) read so far; metrics seen: val/loss"
    assert hint in result.stderr and "did you mean --metric val/loss?" in result.stderr
    assert result.stderr.index(hint) < result.stderr.index("Stopped (")  # before the end
    assert result.stderr.count("no value of metric") == 1  # once


def test_a_metric_never_seen_in_many_lines_is_flagged_and_watching_goes_on(model_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(
        "".join(json.dumps({"run": "big", "step": s, "train/loss": 4.0}) + "\n" for s in range(25))
    )
    command = [
        sys.executable, "-m", "regmixd_cli", "online", str(model_dir), "--follow", str(log),
        "--target-steps", "6000", "--candidates", "2000", "--poll", "0.03", "--timeout", "20",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:  # the context closes the pipes even when an assertion fails
        _check_the_early_warning(proc, log)
    assert proc.returncode == 0


def _check_the_early_warning(proc: subprocess.Popen, log: Path) -> None:
    try:
        seen = []
        for line in proc.stderr:  # until the early warning (or the end, without the fix)
            seen.append(line)
            if "no value of metric" in line:
                break
        hint = "no value of metric 'val/loss' in the 25 line(s) read so far"
        assert hint in seen[-1] and "check --metric (still watching)" in seen[-1], seen
        assert proc.poll() is None  # a warning, not an exit: the metric may appear later ...
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(obs(1500, 3.5))
        assert json.loads(proc.stdout.readline())["switch"] == 1  # ... and here it is
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "no value of metric" not in rest  # once


def test_a_few_lines_without_the_metric_are_not_flagged_early(cli, model_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"run": "big", "step": 10, "train/loss": 4.0}) + "\n")
    result = follow(cli, model_dir, log, "--timeout", "0.2")
    assert result.exit_code == 0, result.output
    assert "read so far" not in result.stderr  # one training-loss line proves nothing yet
    assert "no value of metric 'val/loss' was read; metrics seen: train/loss" in result.stderr
