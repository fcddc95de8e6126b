"""`online --follow` on real logs: rewritten in place, trainer_state metric names, bad losses,
signals during start-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.helpers.paths import ROOT


def obs(step: int, loss: float, run: str = "big") -> str:
    return json.dumps({"run": run, "step": step, "val/loss": loss}) + "\n"


def follow(cli, model, log, *args):
    return cli("online", model, "--follow", log, "--target-steps", "6000", "--candidates",
               "2000", "--poll", "0.03", *args)


def test_a_log_rewritten_in_place_at_the_same_size_is_read_again(tmp_path):
    from regmixd_cli.online.follow import LogSource

    log = tmp_path / "log.jsonl"
    log.write_text(obs(1400, 3.5))
    source = LogSource(log, "jsonl", "val/loss", None)
    assert [o.step for o in source.read()[0]] == [1400]
    stat = log.stat()
    with open(log, "r+b") as handle:  # same inode, same size, new content
        handle.write(obs(1600, 3.4).encode())
    os.utime(log, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    observations, grew = source.read()
    assert [o.step for o in observations] == [1600] and grew
    assert any("rewritten in place" in w for w in source.warnings)


def test_a_log_rewritten_in_place_larger_is_read_from_the_start(tmp_path):
    from regmixd_cli.online.follow import LogSource

    log = tmp_path / "log.jsonl"
    log.write_text(obs(1400, 3.5))
    source = LogSource(log, "jsonl", "val/loss", None)
    source.read()
    with open(log, "r+b") as handle:
        handle.write((obs(1450, 3.45) + obs(1600, 3.4)).encode())
    assert [o.step for o in source.read()[0]] == [1450, 1600]


def test_decisions_follow_a_log_rewritten_in_place(cli, tiny_model, tmp_path):
    import threading

    log = tmp_path / "log.jsonl"
    log.write_text(obs(1400, 3.5))  # before the first switch point (1500): no decision yet

    def rewrite() -> None:
        time.sleep(0.4)
        with open(log, "r+b") as handle:  # same size, same inode: the trainer restarted
            handle.write(obs(1500, 3.5).encode())

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    result = follow(cli, tiny_model, log, "--timeout", "1.5")
    writer.join()
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["step"] for line in result.stdout.splitlines()] == [1500]


def test_a_loss_at_or_below_zero_in_a_log_is_skipped_with_a_warning(cli, tiny_model, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(obs(1500, 0.0) + obs(1600, -1.0) + obs(1700, 3.4))
    result = follow(cli, tiny_model, log, "--timeout", "0.3")
    assert result.exit_code == 0, result.output
    assert "--loss" not in result.stderr
    assert "not a positive loss" in result.stderr
    assert [json.loads(line)["step"] for line in result.stdout.splitlines()] == [1700]


def _state(history):
    return json.dumps({"log_history": history})


def test_trainer_state_metrics_by_raw_key_or_ingest_name_never_mixed(tmp_path):
    from regmixd_cli.online.follow import parse_trainer_state

    history = [{"step": 100, "loss": 5.0}, {"step": 100, "eval_loss": 4.0},
               {"step": 200, "loss": 4.5}, {"step": 200, "eval_g0_loss": 3.9}]
    text = _state(history)
    seen: set[str] = set()
    assert [o.value for o in parse_trainer_state(text, "loss", "t", seen)] == [5.0, 4.5]
    assert seen == {"train/loss", "eval/loss", "eval/g0"}
    assert [o.value for o in parse_trainer_state(text, "train/loss", "t")] == [5.0, 4.5]
    assert [o.value for o in parse_trainer_state(text, "eval/loss", "t")] == [4.0]
    assert [o.value for o in parse_trainer_state(text, "eval_loss", "t")] == [4.0]
    assert [o.value for o in parse_trainer_state(text, "eval/g0", "t")] == [3.9]
    assert [o.value for o in parse_trainer_state(text, "g0", "t")] == [3.9]


def test_a_missing_trainer_state_metric_lists_the_metrics_seen(cli, tiny_model, tmp_path):
    state = tmp_path / "trainer_state.json"
    state.write_text(_state([{"step": 100, "loss": 5.0}, {"step": 100, "eval_g0_loss": 4.0}]))
    result = follow(cli, tiny_model, state, "--metric", "eval/nope", "--timeout", "0.3")
    assert result.exit_code == 0, result.output
    assert "metrics seen: eval/g0, train/loss" in result.stderr


def test_sigterm_during_start_up_stops_cleanly(tiny_model, tmp_path):
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "regmixd_cli", "online", str(tiny_model), "--follow",
         str(tmp_path / "log.jsonl"), "--target-steps", "6000", "--state", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    time.sleep(0.3)  # inside the imports and the model load
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM" in err


def test_an_edited_state_file_is_bad_input(cli, tiny_model, tmp_path):
    log, state = tmp_path / "log.jsonl", tmp_path / "state.json"
    log.write_text(obs(1500, 3.5))
    result = follow(cli, tiny_model, log, "--state", state, "--timeout", "0.3")
    assert result.exit_code == 0, result.output
    document = json.loads(state.read_text())
    for edit in ("domain", "nan"):
        edited = json.loads(json.dumps(document))
        decision = edited["decisions"][0]
        if edit == "domain":
            decision["weights"].pop(next(iter(decision["weights"])))
        else:
            decision["loss"] = "NaN"
        state.write_text(json.dumps(edited))
        result = follow(cli, tiny_model, log, "--state", state, "--timeout", "0.1")
        assert result.exit_code == 3, result.output
        assert "decisions[0]" in result.stderr and "Traceback" not in result.output


def test_following_a_git_lfs_pointer_says_git_lfs_pull(cli, tiny_model, tmp_path):
    state = tmp_path / "trainer_state.json"
    state.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 1\n")
    result = follow(cli, tiny_model, state, "--timeout", "0.3")
    assert result.exit_code == 3, result.output
    assert "git lfs pull" in result.stderr
