"""Each input format parsed into the exact expected rows; format detection by content."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from regmixd_cli.errors import InputError
from regmixd_cli.files import sha256_file
from regmixd_cli.store.readers import (
    detect_format,
    read_csv,
    read_hf,
    read_inputs,
    read_jsonl,
    read_mixtures,
    read_regmix,
    read_wandb,
)
from regmixd_cli.store.readers.base import normalise_domain, normalise_metric
from regmixd_cli.store.readers.hf import run_id

COLUMNS = ["run", "step", "tokens", "metric", "value"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def rows(parsed) -> list[tuple]:
    table = parsed.long_observations()
    assert table.columns == COLUMNS
    assert table.schema == {
        "run": pl.String, "step": pl.Int64, "tokens": pl.Int64, "metric": pl.String,
        "value": pl.Float64,
    }
    return table.rows()


def jsonl(*objs: dict) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def test_jsonl_interleaved_runs_sorted_long_rows(tmp_path):
    path = write(tmp_path / "log.jsonl", jsonl(
        {"run": "b", "mixture": {"x": 0.25, "y": 0.75}},
        {"run": "a", "mixture": {"x": 1, "y": 0}},
        {"run": "b", "step": 200, "tokens": 2000, "val/x": 4.5},
        {"run": "a", "step": 100, "tokens": 1000, "val/x": 5.0, "train/loss": 5.5},
        {"run": "b", "step": 100, "tokens": 1000, "val/x": 4.9, "train/loss": 5.1},
        {"run": "a", "step": 200, "val/x": 4.0},
    ))
    parsed = read_jsonl(path)
    assert parsed.engine == "polars"
    assert parsed.format == "jsonl"
    assert {r: dict(m.weights) for r, m in parsed.mixtures.items()} == {
        "a": {"x": 1.0, "y": 0.0}, "b": {"x": 0.25, "y": 0.75},
    }
    assert parsed.mixtures["a"].where == f"{path}:2"
    assert rows(parsed) == [
        ("a", 100, 1000, "train/loss", 5.5),
        ("a", 100, 1000, "val/x", 5.0),
        ("a", 200, None, "val/x", 4.0),
        ("b", 100, 1000, "train/loss", 5.1),
        ("b", 100, 1000, "val/x", 4.9),
        ("b", 200, 2000, "val/x", 4.5),
    ]


def test_jsonl_key_first_seen_outside_the_schema_sample_is_kept(tmp_path, monkeypatch):
    # The schema comes from the file's first and last lines and polars drops unknown keys
    # silently; the reader must notice and still return the metric seen only in between.
    from regmixd_cli.store.readers import jsonl as module

    calls = []
    stream = module._stream
    monkeypatch.setattr(module, "_stream", lambda *a, **k: calls.append(a[2]) or stream(*a, **k))
    monkeypatch.setattr(module, "_SAMPLE_BYTES", 2000)
    lines = [{"run": f"r{i}", "mixture": {"x": 1.0}} for i in range(150)]
    lines += [{"run": f"r{i}", "step": 10, "train/loss": 3.0} for i in range(150)]
    lines.insert(200, {"run": "r0", "step": 20, "train/loss": 2.5, "val/late": 7.0})
    parsed = read_jsonl(write(tmp_path / "late.jsonl", jsonl(*lines)))
    assert parsed.engine == "polars"
    assert ("r0", 20, None, "val/late", 7.0) in rows(parsed)
    assert parsed.long_observations().height == 152
    assert parsed.mixtures["r7"].where.endswith("late.jsonl:8")
    assert ["val/late" in schema for schema in calls] == [False, True]  # read again


def test_jsonl_mixture_lines_first_are_read_once(tmp_path, monkeypatch):
    # A log that starts with more mixture lines than the schema sample holds (as `simulate`
    # writes for thousands of runs): the observation keys come from the file's end, so the
    # file is read once, not sent to the line scan as rows without a step.
    from regmixd_cli.store.readers import jsonl as module

    calls = []
    stream = module._stream
    monkeypatch.setattr(module, "_stream", lambda *a, **k: calls.append(a[2]) or stream(*a, **k))
    monkeypatch.setattr(module, "_SAMPLE_BYTES", 1000)
    lines = [{"run": f"r{i:03d}", "mixture": {"x": 0.5, "y": 0.5}} for i in range(100)]
    lines += [{"run": f"r{i:03d}", "step": s, "val/x": 3.0 + s} for s in (1, 2)
              for i in range(100)]
    parsed = read_jsonl(write(tmp_path / "log.jsonl", jsonl(*lines)))
    assert parsed.engine == "polars" and len(calls) == 1
    assert parsed.long_observations().height == 200
    assert parsed.mixtures["r099"].where.endswith("log.jsonl:100")


def test_jsonl_nan_and_infinity_are_kept_by_the_line_scan(tmp_path):
    path = write(tmp_path / "nan.jsonl",
                 '{"run": "a", "mixture": {"x": 1.0}}\n'
                 '{"run": "a", "step": 1, "val/x": NaN}\n'
                 '{"run": "a", "step": 2, "val/x": "inf"}\n'
                 '{"run": "a", "step": 3, "val/x": null}\n')
    parsed = read_jsonl(path)
    assert parsed.engine == "line-scan"
    got = rows(parsed)
    assert [r[:4] for r in got] == [("a", 1, None, "val/x"), ("a", 2, None, "val/x")]
    assert math.isnan(got[0][4]) and got[1][4] == math.inf


def test_jsonl_fast_and_line_scan_agree(tmp_path):
    body = jsonl({"run": "a", "mixture": {"x": 0.5, "y": 0.5}},
                 *({"run": "a", "step": s, "tokens": s * 10, "m1": s / 7, "m2": s / 3}
                   for s in range(0, 50, 5)))
    fast = read_jsonl(write(tmp_path / "fast.jsonl", body))
    slow = read_jsonl(write(tmp_path / "slow.jsonl", body + "\n"))  # blank line: line scan
    assert (fast.engine, slow.engine) == ("polars", "line-scan")
    assert fast.long_observations().equals(slow.long_observations())
    assert dict(fast.mixtures["a"].weights) == dict(slow.mixtures["a"].weights)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"run": "a", "mixture": {"x": 1}}\n{"run": "a", "step": 1, "v": 1\n',
         ":2: malformed JSON"),
        ('{"run": "a", "mixture": {"x": 1}}\n[1, 2]\n', ":2: expected one JSON object"),
        ('{"run": "a", "mixture": {"x": 1}}\n{"run": "a", "v": 1.0}\n', ":2: 'step' is missing"),
        ('{"run": "a", "step": 1, "v": "abc"}\n', ":1: value of 'v' is not a number"),
        ('{"step": 1, "v": 1.0}\n', ":1: no usable 'run'"),
        ('{"run": "a", "mixture": {"x": 1}, "step": 3}\n', ":1: a line has both"),
        ('{"run": "a", "mixture": {"x": 1}}\n{"run": "a", "mixture": {"x": 0.5, "y": 0.5}}\n',
         ":2: run 'a' has a different mixture"),
        ('{"run": "a", "mixture": {"x": 1}}\n{"run": "a", "mixture": null, "step": 1, "v": 1}\n',
         ":2: 'mixture' must be a non-empty object"),
        ('{"run": "a", "step": 1, "v": 1' + "0" * 400 + "}\n",  # beyond a float
         ":1: value of 'v' is not a number"),
        ('{"run": "a", "mixture": {"x": 1' + "0" * 400 + "}}\n",
         ":1: weight of 'x' is not a finite number"),
        # Half a surrogate pair is no character (polars reads \\ud800 as a NUL).
        ('{"run": "a", "mixture": {"x": 1}}\n{"run": "a\\ud800", "step": 1, "v": 1}\n',
         ":2: a \\u escape gives half a surrogate pair"),
        ('{"run": "a", "step": 1, "v\\udc00": 1}\n', ":1: a \\u escape gives half a surrogate"),
        ('{"run": "a", "mixture": {"x\\uD800": 1}}\n', ":1: a \\u escape gives half a surrogate"),
    ],
)
def test_jsonl_bad_lines_are_named(tmp_path, text, message):
    path = write(tmp_path / "bad.jsonl", text)
    with pytest.raises(InputError, match=None) as info:
        read_jsonl(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_csv_long(tmp_path):
    path = write(tmp_path / "long.csv",
                 "run,step,metric,value,tokens\n"
                 "b,100,val/x,4.5,100\n"
                 "a,200,val/x,4.0,\n"
                 "a,100,val/x,5.0,50\n"
                 "001,100,val/x,nan,50\n")
    parsed = read_csv(path)
    got = rows(parsed)
    assert got[1:] == [
        ("a", 100, 50, "val/x", 5.0),
        ("a", 200, None, "val/x", 4.0),
        ("b", 100, 100, "val/x", 4.5),
    ]
    assert got[0][:4] == ("001", 100, 50, "val/x") and math.isnan(got[0][4])  # ids stay text


def test_csv_wide_empty_cell_is_not_logged(tmp_path):
    path = write(tmp_path / "wide.csv",
                 "run,step,val/y,val/x\n"
                 "a,100,6.0,5.0\n"
                 "a,200,,4.0\n")
    assert rows(read_csv(path)) == [
        ("a", 100, None, "val/x", 5.0),
        ("a", 200, None, "val/x", 4.0),
        ("a", 100, None, "val/y", 6.0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run,step,val/x\na,100,5.0\na,abc,4.0\n", ":3: step is not a non-negative integer"),
        ("run,step,val/x\na,100,5.0\na,200,oops\n", ":3: value of 'val/x' is not a number"),
        ("run,step,metric,value\na,100,val/x,\n", ":2: value is empty"),
        ("run,step,val/x\na,100,5.0,7\n", ":2: row does not match"),
        ("step,run,val/x\n100,a,5.0\n", ":1: a CSV log starts with a 'run' column"),
        ("run,step,val/x,val/x\na,1,2,3\n", ":1: duplicate column"),
    ],
)
def test_csv_bad_cells_are_named(tmp_path, text, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(InputError) as info:
        read_csv(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_mixtures_csv_json_and_regmix_names(tmp_path):
    csv_file = write(tmp_path / "m.csv", "run,x,y\na,0.5,0.5\nb,1,\n")
    parsed = read_mixtures(csv_file)
    assert {r: dict(m.weights) for r, m in parsed.mixtures.items()} == {
        "a": {"x": 0.5, "y": 0.5}, "b": {"x": 1.0},
    }
    assert parsed.mixtures["b"].where == f"{csv_file}:3"
    json_file = write(tmp_path / "m.json", '{"a": {"train_the_pile_pile_cc": 1.0}}')
    assert dict(read_mixtures(json_file).mixtures["a"].weights) == {"pile_cc": 1.0}
    assert read_csv(csv_file).observations is None  # a run,<domain> table read as mixtures


def test_regmix_pair(tmp_path):
    mix = write(tmp_path / "mix.csv",
                "index,train_the_pile_pile_cc,train_the_pile_github\n1,0.6,0.401\n2,0.3,0.7\n")
    loss = write(tmp_path / "loss.csv",
                 "index,metric/the_pile_pile_cc_val_loss,metric/the_pile_github_val_ppl\n"
                 "1,5.5,100.0\n2,5.25,80.0\n")
    assert {r: dict(m.weights) for r, m in read_regmix(mix).mixtures.items()} == {
        "1": {"pile_cc": 0.6, "github": 0.401}, "2": {"pile_cc": 0.3, "github": 0.7},
    }
    assert rows(read_regmix(loss, final_step=900)) == [
        ("1", 900, None, "val/pile_cc", 5.5),
        ("1", 900, None, "val_ppl/github", 100.0),
        ("2", 900, None, "val/pile_cc", 5.25),
        ("2", 900, None, "val_ppl/github", 80.0),
    ]


def test_regmix_name_normalisation():
    assert normalise_domain("train_the_pile_pile_cc") == "pile_cc"
    assert normalise_domain("github") == "github"
    assert normalise_metric("metric/the_pile_pile_cc_val_loss") == "val/pile_cc"
    assert normalise_metric("metric/the_pile_gutenberg_pg_19_val_ppl") == "val_ppl/gutenberg_pg_19"
    assert normalise_metric("val/pile_cc") == "val/pile_cc"


def test_hf_trainer_state(tmp_path):
    state = {"global_step": 20, "log_history": [
        {"epoch": 0.1, "learning_rate": 4e-4, "loss": 6.5, "step": 10,
         "num_input_tokens_seen": 1000},
        {"epoch": 0.1, "eval_loss": 6.1, "eval_runtime": 1.0, "step": 10},
        {"epoch": 0.2, "eval_pile_cc_loss": 5.9, "eval_pile_cc_runtime": 2.0, "step": 20},
        {"step": 20, "train_loss": 6.0, "train_runtime": 10.0},
    ]}
    path = write(tmp_path / "run_a" / "checkpoint-20" / "trainer_state.json", json.dumps(state))
    assert run_id(path) == "run_a"
    assert run_id(tmp_path / "run_b" / "trainer_state.json") == "run_b"
    assert rows(read_hf(path)) == [
        ("run_a", 10, None, "eval/loss", 6.1),
        ("run_a", 20, None, "eval/pile_cc", 5.9),
        ("run_a", 10, 1000, "train/loss", 6.5),
    ]


def test_wandb_export(tmp_path):
    path = write(tmp_path / "export.csv",
                 '"Step","p1 - metric/the_pile_pile_cc_val_loss","p1 - metric/the_pile_pile_cc'
                 '_val_loss__MIN","p1 - metric/the_pile_pile_cc_val_loss__MAX","p2 - loss"\n'
                 '100,6.0,5.9,6.1,7.0\n'
                 '200,5.5,5.4,5.6,\n')
    assert rows(read_wandb(path)) == [
        ("p1", 100, None, "val/pile_cc", 6.0),
        ("p1", 200, None, "val/pile_cc", 5.5),
        ("p2", 100, None, "loss", 7.0),
    ]


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("a.txt", '{"run": "a", "step": 1, "v": 1}\n', "jsonl"),
        ("a.json", '{"run": "a", "mixture": {"x": 1}}\n', "jsonl"),
        ("a.log", "run,step,metric,value\n", "csv"),
        ("a.dat", "run,step,val/x\n", "csv"),
        ("a.csv", "run,pile_cc,github\n", "mixtures"),
        ("b.csv", "index,train_the_pile_arxiv\n", "regmix"),
        ("c.csv", "Step,p1 - loss\n", "wandb"),
        ("s.json", '{\n  "best_metric": null,\n  "log_history": []\n}\n', "hf"),
        ("m.json", '{\n  "a": {"x": 1.0}\n}\n', "mixtures"),
        ("m.jsonl", '{"a": {"x": 1.0}}\n', "mixtures"),
    ],
)
def test_detect_format_by_content_not_extension(tmp_path, name, text, fmt):
    assert detect_format(write(tmp_path / name, text)) == fmt


def test_detect_format_unknown(tmp_path):
    path = write(tmp_path / "notes.csv", "hello,world\n1,2\n")
    with pytest.raises(InputError, match="cannot tell the log format"):
        detect_format(path)


def test_directory_walk_sorted_hidden_skipped(tmp_path):
    write(tmp_path / "d" / "b.jsonl", '{"run": "b", "step": 1, "v": 1}\n')
    write(tmp_path / "d" / "sub" / "a.jsonl", '{"run": "a", "step": 1, "v": 1}\n')
    write(tmp_path / "d" / ".hidden.jsonl", "garbage\n")
    write(tmp_path / "d" / ".git" / "x.jsonl", "garbage\n")
    write(tmp_path / "d" / "README.md", "not a log\n")
    inputs = read_inputs([str(tmp_path / "d")])
    assert [p.path for p in inputs.parsed] == [
        str(tmp_path / "d" / "b.jsonl"), str(tmp_path / "d" / "sub" / "a.jsonl"),
    ]


def test_jsonl_small_batches_match_one_batch(tmp_path, monkeypatch):
    # Forced tiny batches and parts and a tiny schema sample: runs split across batches, a key
    # seen only near the file's end, mixtures late in the file with their true line numbers.
    from regmixd_cli.store.readers import jsonl as module

    lines = [{"run": "b", "mixture": {"x": 0.5, "y": 0.5}}]
    lines += [{"run": r, "step": s, "tokens": s * 8, "val/x": s / 10 + i}
              for s in range(1, 40) for i, r in enumerate(("b", "a", "c"))]
    lines += [{"run": "a", "mixture": {"x": 1.0}}, {"run": "a", "step": 99, "val/late": 1.5},
              {"run": "c", "mixture": {"y": 1.0}}]
    path = write(tmp_path / "log.jsonl", jsonl(*lines))
    whole = read_jsonl(path)
    monkeypatch.setattr(module, "_SAMPLE_BYTES", 200)
    split = read_jsonl(path, batch_rows=7, part_bytes=500)
    assert (whole.engine, split.engine) == ("polars", "polars")
    assert len(whole.wide.parts) == 1 and len(split.wide.parts) > 3
    assert split.long_observations().equals(whole.long_observations())
    assert ("a", 99, None, "val/late", 1.5) in rows(split)
    assert {r: m.where for r, m in split.mixtures.items()} == {
        "b": f"{path}:1", "a": f"{path}:{len(lines) - 2}", "c": f"{path}:{len(lines)}"}
    assert split.sha256 == whole.sha256 == sha256_file(path)


def test_jsonl_a_late_key_read_again_leaves_no_spilled_part(tmp_path, monkeypatch):
    # The first read's parts, spilled to disk, are given back when the file is read again.
    from regmixd_cli.store.readers import jsonl as module
    from regmixd_cli.store.spill import Spill

    lines = [{"run": "a", "mixture": {"x": 1.0}}]
    lines += [{"run": "a", "step": s, "v": 1.0} for s in range(60)]
    lines.insert(30, {"run": "a", "step": 60, "v": 1.0, "late": 2.0})
    path = write(tmp_path / "log.jsonl", jsonl(*lines))
    monkeypatch.setattr(module, "_SAMPLE_BYTES", 200)
    spill = Spill(tmp_path / "spill", keep_bytes=0)
    parsed = read_jsonl(path, spill=spill, batch_rows=10, part_bytes=200)
    assert parsed.engine == "polars" and ("a", 60, None, "late", 2.0) in rows(parsed)
    assert len(list((tmp_path / "spill").iterdir())) == len(parsed.wide.parts) > 1


def test_jsonl_observations_only_between_sampled_mixture_lines(tmp_path, monkeypatch):
    # Mixture lines at both ends and observations only in between: the sampled schema has no
    # step, so the rows look malformed; the whole-file schema has it and the file is read
    # again with polars, not sent to the line scan.
    from regmixd_cli.store.readers import jsonl as module

    monkeypatch.setattr(module, "_SAMPLE_BYTES", 300)
    lines = [{"run": f"r{i}", "mixture": {"x": 1.0}} for i in range(10)]
    lines += [{"run": f"r{i}", "step": 5, "val/x": 2.0} for i in range(20)]
    lines += [{"run": f"r{i}", "mixture": {"x": 1.0}} for i in range(10, 20)]
    parsed = read_jsonl(write(tmp_path / "log.jsonl", jsonl(*lines)))
    assert parsed.engine == "polars"
    assert parsed.long_observations().height == 20
    assert parsed.mixtures["r15"].where.endswith("log.jsonl:36")


def test_jsonl_last_line_longer_than_the_schema_sample(tmp_path, monkeypatch):
    # The sample's tail holds no whole line (a long last line without a newline): the schema
    # comes from the head alone, not from a cut line that sent the file to the line scan.
    from regmixd_cli.store.readers import jsonl as module

    monkeypatch.setattr(module, "_SAMPLE_BYTES", 300)
    lines = [{"run": "a", "mixture": {"x": 1.0}}]
    lines += [{"run": "a", "step": s, "v": 1.0} for s in range(30)]
    lines.append({"run": "a", "step": 99, **{f"m{i:03d}": float(i) for i in range(40)}})
    parsed = read_jsonl(write(tmp_path / "log.jsonl", jsonl(*lines).rstrip("\n")))
    assert parsed.engine == "polars"
    assert ("a", 99, None, "m039", 39.0) in rows(parsed)
    assert parsed.long_observations().height == 70


def test_jsonl_bad_line_in_a_later_batch_is_named(tmp_path):
    good = jsonl({"run": "a", "mixture": {"x": 1}}, *({"run": "a", "step": s, "v": 1.0}
                                                      for s in range(50)))
    path = write(tmp_path / "bad.jsonl", good + '{"run": "a", "step": 99, "v": "oops"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:52: value of 'v' is not a number"):
        read_jsonl(path, batch_rows=10)


def test_jsonl_checks_across_read_blocks(tmp_path, monkeypatch):
    # The hash, the line and colon counts and the mixture-object count (a file with an
    # escape) do not depend on where the checks' reads end; no final newline.
    from regmixd_cli.store.readers import jsonl as module

    lines = [{"run": 'say "hi"', "mixture": {"x": 1.0}}, {"run": "b", "mixture": {"x": 1.0}}]
    lines += [{"run": r, "step": s, **{f"m{i:03d}": s + i for i in range(s % 3 * 40)}, "v": 1.0}
              for s in range(30) for r in ('say "hi"', "b")]
    path = write(tmp_path / "log.jsonl", jsonl(*lines).rstrip("\n"))
    whole = read_jsonl(path)
    for block, count in ((1, 1), (7, 3), (1 << 16, 1 << 18)):
        monkeypatch.setattr(module, "_READ_BYTES", block)
        monkeypatch.setattr(module, "_COUNT_BYTES", count)
        split = read_jsonl(path)
        assert split.engine == "polars"
        assert split.long_observations().equals(whole.long_observations())
        assert split.sha256 == whole.sha256 == sha256_file(path)
        assert split.mixtures == whole.mixtures


def test_jsonl_interrupted_read_stops_the_checks(tmp_path, monkeypatch):
    # Ctrl-C (or any failure) while polars parses: the thread beside it stops reading the file
    # instead of holding the interrupt up until the whole file has been hashed.
    import threading
    import time

    from regmixd_cli.store.readers import jsonl as module

    path = write(tmp_path / "log.jsonl", jsonl({"run": "a", "mixture": {"x": 1.0}},
                                               *({"run": "a", "step": s, "v": 1.0}
                                                 for s in range(20_000))))
    monkeypatch.setattr(module, "_READ_BYTES", 16)
    read, started, raised = [], threading.Event(), threading.Event()

    class Digest:  # counts the bytes the checks read; the first block waits for the interrupt
        def update(self, data: bytes) -> None:
            read.append(len(data))
            if len(read) == 1:
                started.set()
                raised.wait(10)
                time.sleep(0.1)  # the interrupt reaches the reader's handler meanwhile

        def hexdigest(self) -> str:
            return ""

    def interrupted(*args, **kwargs):
        started.wait(10)
        raised.set()
        raise KeyboardInterrupt

    monkeypatch.setattr(module.hashlib, "sha256", Digest)
    monkeypatch.setattr(module, "_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        read_jsonl(path)
    assert 0 < sum(read) < path.stat().st_size // 2


@pytest.mark.parametrize(
    ("mixture", "message"),
    [
        ('"{\\"x\\": 1.0}"', "'mixture' must be a non-empty object"),  # JSON text in a string
        ("{}", "'mixture' must be a non-empty object"),
        ('{"x": "1"}', "weight of 'x' is not a finite number"),
        ('{"x": 1.0, "y": null}', "weight of 'y' is not a finite number"),
    ],
)
def test_jsonl_bad_mixture_after_the_schema_window_is_named(tmp_path, mixture, message):
    # Past the lines polars infers its schema from, the fast path reads a mixture as JSON text;
    # what is not an object of numbers still goes to the line scan, which names the line.
    body = jsonl({"run": "a", "mixture": {"x": 1.0}},
                 *({"run": "a", "step": s, "v": 1.0} for s in range(150)))
    path = write(tmp_path / "bad.jsonl", body + f'{{"run": "b", "mixture": {mixture}}}\n'
                 + jsonl({"run": "b", "step": 1, "v": 1.0}))
    with pytest.raises(InputError) as info:
        read_jsonl(path)
    assert str(info.value).startswith(f"{path}:152: {message}")


def test_jsonl_mixture_objects_pass_the_escape_guard(tmp_path):
    # A batch with escapes is checked for string-held mixtures; real objects pass. (A domain
    # name with a quote comes back unescaped from polars, so that file takes the line scan.)
    body = jsonl({"run": "a\\b", "mixture": {"x": 0.25, "z": 0.75}},
                 *({"run": "a\\b", "step": s, "v": 1.0} for s in range(5)))
    parsed = read_jsonl(write(tmp_path / "log.jsonl", body))
    assert parsed.engine == "polars"
    assert parsed.mixtures["a\\b"].weights == {"x": 0.25, "z": 0.75}
    quoted = read_jsonl(write(tmp_path / "q.jsonl", body.replace('"x"', '"x\\"y"')))
    assert quoted.engine == "line-scan"
    assert quoted.mixtures["a\\b"].weights == {'x"y': 0.25, "z": 0.75}


@pytest.mark.parametrize("lengths", [(3, 3, 3), (2, 3, 1)])
@pytest.mark.parametrize("null_tokens", [False, True])
def test_wide_to_long_equal_runs_and_general_paths_agree(lengths, null_tokens):
    # Equal-length runs without gaps take strided copies, others index arithmetic; both give
    # what the general unpivot gives.
    from regmixd_cli.store.readers.wide import wide_to_long, wide_to_long_frame

    runs = [r for r, n in zip("abc", lengths, strict=True) for _ in range(n)]
    steps = [10 * s for n in lengths for s in range(1, n + 1)]
    wide = pl.DataFrame({"run": runs, "step": steps,
                         "tokens": [None if null_tokens and i % 2 else i for i in range(len(runs))],
                         "z/m": [float(i) for i in range(len(runs))],
                         "a/m": [i / 7 for i in range(len(runs))]},
                        schema_overrides={"tokens": pl.Int64})
    table = wide_to_long(wide)
    assert table is not None
    got = pl.from_arrow(table).with_columns(pl.col("run", "metric").cast(pl.String))
    assert got.select(COLUMNS).equals(wide_to_long_frame(wide).select(COLUMNS))
