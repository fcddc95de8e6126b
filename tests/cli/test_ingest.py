"""`regmixd ingest` end to end: store schema, append, determinism, bad inputs, real RegMix data."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regmixd_cli.domain import STORE_SCHEMA
from regmixd_cli.errors import InputError
from regmixd_cli.store.files import read_store
from regmixd_cli.store.ingest import build_store
from regmixd_cli.store.readers import read_inputs, read_jsonl
from tests.helpers.cli import fails
from tests.helpers.paths import SAMPLE_LOGS

SAMPLE_FORMATS = SAMPLE_LOGS / "formats"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*objs: dict) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def good_log(tmp_path: Path, name: str = "good.jsonl") -> Path:
    return write(tmp_path / name, jsonl(
        {"run": "a", "mixture": {"x": 0.6, "y": 0.4}},
        {"run": "b", "mixture": {"x": 0.1, "y": 0.9}},
        {"run": "a", "step": 100, "tokens": 10, "val/x": 5.0, "train/loss": 5.5},
        {"run": "b", "step": 100, "tokens": 10, "val/x": 4.0, "train/loss": 4.5},
        {"run": "a", "step": 200, "tokens": 20, "val/x": 4.5},
        {"run": "b", "step": 200, "tokens": 20, "val/x": 3.5},
    ))


def store_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_ingest_writes_the_store_schema(cli, tmp_path):
    out = tmp_path / "store"
    result = cli("ingest", good_log(tmp_path), "--out", out)
    assert result.exit_code == 0, result.output
    assert "2 runs x 2 domains, 2 metrics, 6 rows" in result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "runs.parquet", "trajectories.parquet",
    ]
    store = read_store(out)
    assert store.domains == ("x", "y")
    assert store.runs.schema == {"run": pl.String, "x": pl.Float64, "y": pl.Float64,
                                 "source": pl.String, "diverged": pl.Boolean}
    assert store.runs.rows() == [("a", 0.6, 0.4, str(tmp_path / "good.jsonl"), False),
                                 ("b", 0.1, 0.9, str(tmp_path / "good.jsonl"), False)]
    assert store.trajectories.rows() == [
        ("a", 100, 10, "train/loss", 5.5), ("a", 100, 10, "val/x", 5.0),
        ("a", 200, 20, "val/x", 4.5), ("b", 100, 10, "train/loss", 4.5),
        ("b", 100, 10, "val/x", 4.0), ("b", 200, 20, "val/x", 3.5),
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == STORE_SCHEMA
    assert manifest["metrics"] == ["train/loss", "val/x"]
    assert (manifest["n_runs"], manifest["n_rows"], manifest["n_diverged"]) == (2, 6, 0)
    assert [(i["path"], i["format"], len(i["sha256"])) for i in manifest["inputs"]] == [
        (str(tmp_path / "good.jsonl"), "jsonl", 64)]


def test_json_summary_on_stdout(cli, tmp_path):
    result = cli("ingest", good_log(tmp_path), "--out", tmp_path / "s", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_runs"] == 2 and summary["domains"] == ["x", "y"]
    assert summary["diverged"] == [] and summary["store"] == str(tmp_path / "s")


def test_reingest_is_byte_identical(cli, tmp_path):
    log = good_log(tmp_path)
    extra = write(tmp_path / "more.csv", "run,step,metric,value\na,300,val/x,4.2\n")
    first, second = tmp_path / "s1", tmp_path / "s2"
    assert cli("ingest", log, extra, "--out", first).exit_code == 0
    assert cli("ingest", extra, log, "--out", second).exit_code == 0
    assert store_bytes(first) == store_bytes(second)
    assert cli("ingest", log, extra, "--out", first).exit_code == 0  # replaced in place
    assert store_bytes(first) == store_bytes(second)


def test_append_adds_runs_and_steps(cli, tmp_path):
    out = tmp_path / "store"
    assert cli("ingest", good_log(tmp_path), "--out", out).exit_code == 0
    more = write(tmp_path / "more.jsonl", jsonl(
        {"run": "c", "mixture": {"x": 0.5, "y": 0.5}},
        {"run": "c", "step": 100, "val/x": 4.8},
        {"run": "a", "step": 300, "tokens": 30, "val/x": 4.1},
        {"run": "a", "step": 200, "tokens": 20, "val/x": 4.5},  # identical repeat: collapses
    ))
    result = cli("ingest", more, "--out", out, "--append")
    assert result.exit_code == 0, result.output
    store = read_store(out)
    assert store.runs.get_column("run").to_list() == ["a", "b", "c"]
    assert store.trajectories.height == 8
    assert [i["path"] for i in store.manifest["inputs"]] == [
        str(tmp_path / "good.jsonl"), str(tmp_path / "more.jsonl")]
    # Appending the same files again changes nothing.
    before = store_bytes(out)
    assert cli("ingest", more, "--out", out, "--append").exit_code == 0
    assert store_bytes(out) == before


def test_append_conflicting_mixture_leaves_store_untouched(cli, tmp_path):
    out = tmp_path / "store"
    assert cli("ingest", good_log(tmp_path), "--out", out).exit_code == 0
    before = store_bytes(out)
    other = write(tmp_path / "other.jsonl", jsonl({"run": "a", "mixture": {"x": 0.5, "y": 0.5}},
                                                  {"run": "a", "step": 500, "val/x": 1.0}))
    result = cli("ingest", other, "--out", out, "--append")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: {other}:1: run 'a' has a different mixture")
    assert store_bytes(out) == before


def test_nan_loss_flags_run_diverged(cli, tmp_path):
    log = write(tmp_path / "d.jsonl",
                '{"run": "a", "mixture": {"x": 1.0}}\n{"run": "a", "step": 1, "v": 3.0}\n'
                '{"run": "a", "step": 2, "v": NaN}\n'
                '{"run": "b", "mixture": {"x": 1.0}}\n{"run": "b", "step": 1, "v": 3.0}\n')
    result = cli("ingest", log, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "Warning: run 'a': non-finite loss" in result.stderr
    assert "1 diverged: a" in result.stderr
    store = read_store(tmp_path / "s")
    assert store.runs.get_column("diverged").to_list() == [True, False]
    assert math.isnan(store.trajectories.filter(pl.col("step") == 2).get_column("value")[0])


def test_weights_renormalised_within_tolerance(cli, tmp_path):
    log = write(tmp_path / "r.jsonl", jsonl({"run": "a", "mixture": {"x": 0.503, "y": 0.5}},
                                            {"run": "a", "step": 1, "v": 1.0}))
    assert cli("ingest", log, "--out", tmp_path / "s").exit_code == 0
    runs = read_store(tmp_path / "s").runs
    assert runs.get_column("x")[0] + runs.get_column("y")[0] == pytest.approx(1.0, abs=1e-12)


def test_fill_missing_domains(cli, tmp_path):
    log = write(tmp_path / "f.jsonl", jsonl({"run": "a", "mixture": {"x": 1.0}},
                                            {"run": "b", "mixture": {"y": 1.0}},
                                            {"run": "a", "step": 1, "v": 1.0},
                                            {"run": "b", "step": 1, "v": 2.0}))
    assert cli("ingest", log, "--out", tmp_path / "s").exit_code == 3
    assert cli("ingest", log, "--out", tmp_path / "s", "--fill-missing-domains").exit_code == 0
    runs = read_store(tmp_path / "s").runs
    assert runs.select("x", "y").rows() == [(1.0, 0.0), (0.0, 1.0)]


@pytest.mark.parametrize("example", ["csv_long", "csv_wide", "hf", "wandb", "regmix"])
def test_every_sample_format_ingests_cleanly(cli, tmp_path, example):
    result = cli("ingest", SAMPLE_FORMATS / example, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert read_store(tmp_path / "s").n_runs > 0


def test_mixtures_option_with_wandb_export(cli, tmp_path):
    folder = SAMPLE_FORMATS / "wandb"
    result = cli("ingest", folder / "export.csv", "--mixtures", folder / "mixtures.csv",
                 "--out", tmp_path / "s", "--format", "wandb")
    assert result.exit_code == 0, result.output
    store = read_store(tmp_path / "s")
    assert store.metrics == ("eval/pile_cc_loss",)
    assert store.trajectories.filter(pl.col("run") == "proxy-04").height == 7


def test_regmix_real_data(cli, tmp_path, regmix_data):
    out = tmp_path / "store"
    result = cli("ingest", regmix_data / "train_mixture_1m.csv",
                 regmix_data / "train_pile_loss_1m.csv", "--out", out)
    assert result.exit_code == 0, result.output
    store = read_store(out)
    assert (store.n_runs, len(store.domains), len(store.metrics)) == (512, 17, 13)
    assert "val/pile_cc" in store.metrics and "pile_cc" in store.domains
    assert set(store.trajectories.get_column("step").unique().to_list()) == {1000}
    sums = store.runs.select(pl.sum_horizontal(store.domains)).to_series()
    assert ((sums - 1.0).abs() < 1e-9).all()


def test_few_mb_jsonl_uses_the_polars_fast_path(tmp_path):
    lines = [{"run": f"p{r:03d}", "mixture": {"x": 0.5, "y": 0.5}} for r in range(200)]
    metrics = ("val/x", "val/y", "val/z", "train/loss", "eval/loss")
    lines += [{"run": f"p{r:03d}", "step": s, "tokens": s * 1024,
               **{m: 5.0 - s / 1e3 + i / 7 for i, m in enumerate(metrics)}}
              for s in range(10, 1001, 10) for r in range(200)]
    path = write(tmp_path / "big.jsonl", jsonl(*lines))
    assert path.stat().st_size > 2_000_000
    parsed = read_jsonl(path)
    assert parsed.engine == "polars"  # not the line-by-line fallback
    result = build_store(read_inputs([str(path)]).parsed)
    assert result.store.n_runs == 200 and result.store.trajectories.height == 200 * 100 * 5


def interleaved_log(tmp_path: Path) -> Path:
    """Three runs interleaved line by line, a late metric, null tokens, a repeated line."""
    lines: list[dict] = [{"run": r, "mixture": {"x": w, "y": 1 - w}}
                         for r, w in (("c", 0.2), ("a", 0.5), ("b", 0.9))]
    lines += [{"run": r, "step": s, **({"tokens": s * 4} if r != "b" else {}),
               "val/x": round(5 - s / 50 + i, 3), "train/loss": round(6 - s / 40, 3)}
              for s in range(0, 200, 5) for i, r in enumerate(("c", "a", "b"))]
    lines += [{"run": "a", "step": 500, "eval/late": 2.5},
              {"run": "c", "step": 10, "tokens": 40, "val/x": 4.8, "train/loss": 5.75}]
    return write(tmp_path / "log.jsonl", jsonl(*lines))


def ingest_with(path: Path, out: Path, *, batch_rows: int, part_bytes: int, bucket_rows: int,
                spill: int | None) -> None:
    """What `regmixd ingest` does, with the batch, part and bucket sizes forced; `spill`: the
    bytes of parts kept in memory before the rest go to disk (None: all in memory)."""
    from regmixd_cli.store.files import open_store
    from regmixd_cli.store.spill import Spill

    with open_store(out) as draft:
        keep = Spill(draft.spill_dir, keep_bytes=spill) if spill is not None else None
        parsed = read_jsonl(path, spill=keep,
                            batch_rows=batch_rows, part_bytes=part_bytes)
        result = build_store([parsed], label=str(path), sink=draft.write_trajectories,
                             bucket_rows=bucket_rows)
        draft.finish(result.store)


def test_batches_parts_buckets_and_spill_give_the_same_store(cli, tmp_path):
    log = interleaved_log(tmp_path)
    reference = tmp_path / "cli"
    assert cli("ingest", log, "--out", reference).exit_code == 0
    expected = store_bytes(reference)
    for i, (batch, part, bucket, spill) in enumerate(
            [(7, 700, 10, 0), (10, 10**9, 1, None), (1 << 20, 1 << 20, 10**9, 0),
             (7, 700, 10, 3000)]):
        out = tmp_path / f"s{i}"
        ingest_with(log, out, batch_rows=batch, part_bytes=part, bucket_rows=bucket,
                    spill=spill)
        assert store_bytes(out) == expected, (batch, part, bucket, spill)
    store = read_store(reference)
    assert ("a", 500, None, "eval/late", 2.5) in store.trajectories.rows()
    assert store.trajectories.height == 40 * 3 * 2 + 1  # the repeated line collapsed
    assert store.trajectories.equals(
        store.trajectories.sort(["run", "metric", "step"], maintain_order=True))


def test_conflict_across_batches_names_the_file(tmp_path):
    log = interleaved_log(tmp_path)
    text = log.read_text() + jsonl({"run": "b", "step": 100, "val/x": 9.0})
    bad = write(tmp_path / "bad.jsonl", text)
    with pytest.raises(InputError) as info:
        ingest_with(bad, tmp_path / "out", batch_rows=7, part_bytes=700, bucket_rows=10,
                    spill=0)
    assert str(info.value).startswith(f"{bad}: run 'b' logs 'val/x' at step 100 twice")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no leftovers


def test_wide_and_long_sources_merge(cli, tmp_path):
    log = interleaved_log(tmp_path)
    extra = write(tmp_path / "more.csv", "run,step,metric,value,tokens\n"
                  "a,5,val/x,5.9,20\nb,999,val/y,1.0,\n")
    out = tmp_path / "store"
    result = cli("ingest", log, extra, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_store(out).trajectories
    assert rows.filter(run="b", metric="val/y").rows() == [("b", 999, None, "val/y", 1.0)]
    assert rows.filter(run="a", metric="val/x", step=5).height == 1  # identical: collapsed
    conflict = write(tmp_path / "conflict.csv", "run,step,metric,value\na,5,val/x,1.0\n")
    result = cli("ingest", log, conflict, "--out", tmp_path / "s2")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: {conflict}, {log}: run 'a' logs 'val/x' at step 5")


def test_trajectory_bytes_do_not_depend_on_chunking(tmp_path, monkeypatch):
    from regmixd_cli.store import files as store_io

    monkeypatch.setattr(store_io, "ROW_GROUP_ROWS", 4)
    frame = pl.DataFrame({"run": ["a"] * 5 + ["b"] * 6, "step": list(range(11)),
                          "tokens": [None] * 3 + list(range(8)),
                          "metric": ["m", "n"] * 5 + ["m"], "value": [float(i) for i in range(11)]})
    written = {}
    for name, chunks in (("whole", [frame]), ("ones", [frame[i:i + 1] for i in range(11)]),
                         ("threes", [frame[i:i + 3] for i in range(0, 11, 3)])):
        writer = store_io.TrajectoryWriter(tmp_path / f"{name}.parquet")
        for chunk in chunks:
            writer.write(chunk)
        writer.close()
        written[name] = (tmp_path / f"{name}.parquet").read_bytes()
        assert pl.read_parquet(tmp_path / f"{name}.parquet").equals(frame)
    assert written["whole"] == written["ones"] == written["threes"]


def expected_row_groups(run_rows: list[int], limit: int) -> list[int]:
    """The row-group sizes of the file-format rule, from the runs' row counts in order."""
    sizes, total = [], 0
    for n in run_rows:
        if n > limit:
            if total:
                sizes.append(total)
                total = 0
            sizes.extend([limit] * (n // limit) + ([n % limit] if n % limit else []))
        elif total and total + n > limit:
            sizes.append(total)
            total = n
        else:
            total += n
    return sizes + ([total] if total else [])


@pytest.mark.parametrize("seed", range(6))
def test_row_groups_hold_whole_runs_whatever_the_chunks(tmp_path, monkeypatch, seed):
    """Row groups are whole runs packed up to ROW_GROUP_ROWS rows; a longer run is cut into
    pieces of that size and shares no group. The bytes are the same for any chunking."""
    import numpy as np
    import pyarrow.parquet as pq

    from regmixd_cli.store import files as store_io

    limit = 8
    monkeypatch.setattr(store_io, "ROW_GROUP_ROWS", limit)
    rng = np.random.default_rng(seed)
    run_rows = [int(n) for n in rng.choice([1, 3, 7, 8, 9, 16, 17, 30], size=12)]
    runs = [f"r{i:02d}" for i in range(len(run_rows)) for _ in range(run_rows[i])]
    n = len(runs)
    frame = pl.DataFrame({
        "run": runs, "step": [int(s) for s in rng.integers(0, 100, n)],
        "tokens": [int(t) for t in rng.integers(0, 1000, n)],
        "metric": [f"m{int(m)}" for m in rng.integers(0, 3, n)],
        "value": rng.normal(size=n)})
    written = set()
    for trial in range(4):
        cuts = sorted({int(c) for c in rng.integers(1, n, size=trial * 5)}) if trial else []
        edges = [0, *cuts, n]
        writer = store_io.TrajectoryWriter(tmp_path / f"{trial}.parquet")
        for lo, hi in zip(edges, edges[1:], strict=False):
            writer.write(frame[lo:hi])
        writer.close()
        path = tmp_path / f"{trial}.parquet"
        written.add(path.read_bytes())
        assert pl.read_parquet(path).equals(frame)
        meta = pq.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert sizes == expected_row_groups(run_rows, limit)
    assert len(written) == 1


def _split_dictionaries(chunk: pl.DataFrame) -> object:
    """`chunk` as an Arrow table whose run and metric columns are two Arrow chunks with
    different dictionaries (unused and reordered entries), as another producer may give."""
    import pyarrow as pa

    if chunk.height < 2:
        return chunk
    parts = []
    for part in (chunk[:chunk.height // 2], chunk[chunk.height // 2:]):
        table = part.to_arrow()
        columns = []
        for name in table.column_names:
            column = table.column(name)
            if name in ("run", "metric"):
                values = column.cast(pa.string()).to_pylist()
                entries = sorted({*values, "~unused"}, reverse=True)
                codes = pa.array([entries.index(v) for v in values], pa.int32())
                column = pa.chunked_array(
                    [pa.DictionaryArray.from_arrays(codes, pa.array(entries))])
            columns.append(column)
        parts.append(pa.table(columns, names=table.column_names))
    return pa.concat_tables(parts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_row_groups_follow_the_rule_for_any_chunks_and_encoders(data):
    """Any run lengths (long runs of whole pieces, runs going on across many chunks), any
    chunking (empty chunks, chunks with their own dictionaries) and any number of encoders:
    the row groups follow the rule and the bytes are those of the whole table."""
    import tempfile

    import pyarrow.parquet as pq

    from regmixd_cli.store import files as store_io

    limit = data.draw(st.integers(2, 6))
    run_rows = data.draw(st.lists(st.integers(1, 4 * limit), min_size=1, max_size=8))
    n = sum(run_rows)
    frame = pl.DataFrame({
        "run": [f"r{i}" for i, k in enumerate(run_rows) for _ in range(k)],
        "step": [s for k in run_rows for s in range(k)], "tokens": [None] * n,
        "metric": ["m"] * n, "value": [float(i) for i in range(n)]},
        schema={"run": pl.String, "step": pl.Int64, "tokens": pl.Int64, "metric": pl.String,
                "value": pl.Float64})
    edges = [0, *sorted(data.draw(st.lists(st.integers(0, n), max_size=12))), n]
    odd = data.draw(st.lists(st.booleans(), min_size=len(edges), max_size=len(edges)))
    chunks = [_split_dictionaries(frame[lo:hi]) if bent else frame[lo:hi]
              for lo, hi, bent in zip(edges, edges[1:], odd, strict=False)]
    cores = data.draw(st.integers(1, 4))
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp:
        patch.setattr(store_io, "ROW_GROUP_ROWS", limit)
        patch.setattr(store_io, "available_cores", lambda: cores)
        whole = Path(tmp) / "whole.parquet"
        writer = store_io.TrajectoryWriter(whole)
        writer.write(frame)
        writer.close()
        meta = pq.ParquetFile(whole).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert sizes == expected_row_groups(run_rows, limit)
        store_io.StoreDraft(Path(tmp)).write_trajectories(iter(chunks))
        pooled = Path(tmp) / store_io.TRAJECTORIES_FILE
        assert pooled.read_bytes() == whole.read_bytes()
        assert pl.read_parquet(pooled).equals(frame)


def test_trajectory_columns_are_required_but_tokens(tmp_path):
    import pyarrow.parquet as pq

    from regmixd_cli.store import files as store_io

    frame = pl.DataFrame({"run": ["a", "a"], "step": [1, 2], "tokens": [None, 8],
                          "metric": ["m", "m"], "value": [1.0, 2.0]})
    writer = store_io.TrajectoryWriter(tmp_path / "t.parquet")
    writer.write(frame)
    writer.close()
    schema = pq.ParquetFile(tmp_path / "t.parquet").schema
    assert {c.name: c.max_definition_level for c in schema} == {
        "run": 0, "step": 0, "tokens": 1, "metric": 0, "value": 0}
    assert pl.read_parquet(tmp_path / "t.parquet").equals(frame)
    with pytest.raises(ValueError, match="'value' has nulls"):
        store_io.TrajectoryWriter(tmp_path / "u.parquet").write(
            frame.with_columns(pl.Series("value", [1.0, None])))


def test_trajectory_encodings(tmp_path):
    """Steps and tokens are delta-coded (each run's steps rise by a stride: cheaper to encode
    and smaller than a dictionary of every step), run/metric dictionary-coded, values split by
    byte stream; values read back unchanged, nulls included."""
    import pyarrow.parquet as pq

    from regmixd_cli.store import files as store_io

    frame = pl.DataFrame({"run": ["a"] * 3 + ["b"] * 3, "step": [10, 20, 30, 10, 20, 30],
                          "tokens": [None, 2 << 40, 3 << 40, 1, 2, 3],
                          "metric": ["m"] * 6, "value": [0.5, 1e300, -2.0, 3.0, 4.0, 5.0]})
    writer = store_io.TrajectoryWriter(tmp_path / "t.parquet")
    writer.write(frame)
    writer.close()
    group = pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: set(group.column(i).encodings)
                 for i in range(group.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["step"]
    assert "DELTA_BINARY_PACKED" in encodings["tokens"]
    assert "BYTE_STREAM_SPLIT" in encodings["value"]
    assert "RLE_DICTIONARY" in encodings["run"] and "RLE_DICTIONARY" in encodings["metric"]
    assert pl.read_parquet(tmp_path / "t.parquet").equals(frame)


def test_tokens_are_required_where_every_row_has_them(cli, tmp_path):
    """A store whose rows all carry tokens writes the column as required (no definition
    levels to encode); one missing value anywhere, in any input, keeps it optional."""
    import pyarrow.parquet as pq

    def levels(store: Path) -> int:
        schema = pq.ParquetFile(store / "trajectories.parquet").schema
        return {c.name: c.max_definition_level for c in schema}["tokens"]

    full = write(tmp_path / "full.jsonl", jsonl(
        {"run": "a", "mixture": {"x": 0.5, "y": 0.5}},
        *({"run": "a", "step": s, "tokens": s * 8, "val/x": 5.0 - s / 100} for s in range(5))))
    gap = write(tmp_path / "gap.jsonl", jsonl(
        {"run": "b", "mixture": {"x": 0.1, "y": 0.9}},
        *({"run": "b", "step": s, **({"tokens": s * 8} if s != 3 else {}), "val/x": 4.0}
          for s in range(5))))
    assert cli("ingest", full, "--out", tmp_path / "full").exit_code == 0
    assert levels(tmp_path / "full") == 0
    assert cli("ingest", full, gap, "--out", tmp_path / "both").exit_code == 0
    assert levels(tmp_path / "both") == 1
    assert cli("ingest", gap, "--out", tmp_path / "grow").exit_code == 0
    assert cli("ingest", full, "--out", tmp_path / "grow", "--append").exit_code == 0
    assert levels(tmp_path / "grow") == 1
    stored = read_store(tmp_path / "both").trajectories
    assert stored.filter(pl.col("run") == "b").get_column("tokens").to_list() == [
        0, 8, 16, None, 32]
    assert read_store(tmp_path / "grow").trajectories.equals(stored)


def test_parts_in_run_blocks_are_concatenated_in_order_not_sorted(tmp_path):
    # Runs in blocks (as when each proxy logs in turn), so parts hold disjoint runs, listed
    # here out of order; and parts that share a run, whose repeated step keeps part order.
    from regmixd_cli.store.ingest import _concat_sorted

    def part(run: str, steps: list[int], value: float) -> pl.DataFrame:
        return pl.DataFrame({"run": run, "step": steps, "tokens": None, "v": value},
                            schema_overrides={"tokens": pl.Int64})

    disjoint = _concat_sorted([part("c", [1, 2], 0.0), part("a", [1], 1.0), part("b", [5], 2.0)])
    assert disjoint.get_column("run").to_list() == ["a", "b", "c", "c"]
    shared = _concat_sorted([part("b", [3], 0.0), part("a", [1, 3], 1.0), part("b", [3, 4], 2.0)])
    assert shared.select("run", "step", "v").rows() == [
        ("a", 1, 1.0), ("a", 3, 1.0), ("b", 3, 0.0), ("b", 3, 2.0), ("b", 4, 2.0)]


# ---------------------------------------------------------------------------------------------
# Bad inputs: exit code 3, one `Error:` line naming the file, no store left, old store intact.

MIX = '{"run": "a", "mixture": {"x": 0.5, "y": 0.5}}\n'
OBS = '{"run": "a", "step": 1, "v": 1.0}\n'

BAD_INPUTS = {
    "malformed-json": ({"bad.jsonl": MIX + '{"run": "a", "step": 2,\n'}, [], "bad.jsonl:2:"),
    "not-an-object": ({"bad.jsonl": MIX + "[1, 2]\n"}, [], "bad.jsonl:2:"),
    "no-step": ({"bad.jsonl": MIX + '{"run": "a", "v": 1.0}\n'}, [], "bad.jsonl:2:"),
    "non-numeric-jsonl": ({"bad.jsonl": MIX + '{"run": "a", "step": 1, "v": "x"}\n'}, [],
                          "bad.jsonl:2:"),
    "negative-weight": ({"bad.jsonl": '{"run": "a", "mixture": {"x": -0.5, "y": 1.5}}\n' + OBS},
                        [], "bad.jsonl:1:"),
    "sum-off": ({"bad.jsonl": '{"run": "a", "mixture": {"x": 0.5, "y": 0.6}}\n' + OBS}, [],
                "bad.jsonl:1:"),
    "obs-without-mixture": ({"bad.jsonl": MIX + OBS + '{"run": "b", "step": 1, "v": 2.0}\n'},
                            [], "bad.jsonl"),
    "mixture-without-obs": ({"bad.jsonl": MIX + OBS
                             + '{"run": "b", "mixture": {"x": 1, "y": 0}}\n'}, [], "bad.jsonl:3:"),
    "duplicate-different": ({"a.jsonl": MIX + OBS,
                             "bad.jsonl": '{"run": "a", "step": 1, "v": 2}\n'}, [], "bad.jsonl"),
    "domains-differ": ({"bad.jsonl": MIX + OBS + '{"run": "b", "mixture": {"x": 1}}\n'
                        '{"run": "b", "step": 1, "v": 1}\n'}, [], "bad.jsonl:3:"),
    "unknown-format": ({"bad.txt": "hello world\n"}, [], "bad.txt"),
    "empty-file": ({"bad.jsonl": ""}, [], "bad.jsonl"),
    "csv-non-numeric": ({"bad.csv": "run,step,v\na,1,1.0\na,2,abc\n", "m.csv": "run,x\na,1\n"},
                        [], "bad.csv:3:"),
    "csv-ragged": ({"bad.csv": "run,step,v\na,1,1.0,9\n", "m.csv": "run,x\na,1\n"}, [],
                   "bad.csv:2:"),
    "mixtures-json-malformed": ({"logs.csv": "run,step,v\na,1,1.0\n", "bad.json": "{\"a\": \n"},
                                ["--mixtures", "bad.json"], "bad.json"),
    "hf-no-log-history": ({"run/trainer_state.json": '{"log_history": 3}'}, ["--format", "hf"],
                          "trainer_state.json"),
    "wandb-bad-column": ({"bad.csv": "Step,p1 - loss,oops\n1,2,3\n"}, [], "bad.csv:1:"),
    "missing-path": ({}, [], "nope.jsonl"),
    "missing-mixtures-file": ({"logs.csv": "run,step,v\na,1,1.0\n"}, ["--mixtures", "nope.csv"],
                              "nope.csv"),
    "mixture-twice-disagrees": ({"a.jsonl": MIX + OBS,
                                 "bad.jsonl": '{"run": "a", "mixture": {"x": 1, "y": 0}}\n'}, [],
                                "bad.jsonl:1:"),
    "regmix-non-numeric": ({"bad.csv": "index,metric/the_pile_x_val_loss\n1,abc\n",
                            "mix.csv": "index,train_the_pile_x\n1,1.0\n"}, [], "bad.csv:2:"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_error_line_and_no_store(cli, tmp_path, case, monkeypatch):
    files, extra, names = BAD_INPUTS[case]
    logs = tmp_path / "logs"
    logs.mkdir()
    for name, text in files.items():
        write(logs / name, text)
    monkeypatch.chdir(logs)
    paths = [n for n in files if n not in ("bad.json",)] or ["nope.jsonl"]
    args = ["ingest", *sorted({p.split("/")[0] for p in paths}), *extra]

    fresh = tmp_path / "fresh"
    result = cli(*args, "--out", fresh)
    assert result.exit_code == 3, (case, result.output)
    assert result.stderr.startswith("Error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert names in result.stderr, result.stderr
    assert not fresh.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    existing = tmp_path / "existing"
    good = good_log(tmp_path)
    assert cli("ingest", good, "--out", existing).exit_code == 0
    before = store_bytes(existing)
    result = cli(*args, "--out", existing)
    assert result.exit_code == 3, (case, result.output)
    assert store_bytes(existing) == before


def test_out_exists_and_is_not_a_store(cli, tmp_path):
    log = good_log(tmp_path)
    as_file = write(tmp_path / "file", "precious\n")
    result = cli("ingest", log, "--out", as_file)
    assert result.exit_code == 3
    assert result.stderr == (f"Error: {as_file}: exists and is not a regmixd store; "
                             "choose another --out or remove it\n")
    assert as_file.read_text() == "precious\n"
    folder = tmp_path / "folder"
    write(folder / "keep.txt", "x")
    assert cli("ingest", log, "--out", folder).exit_code == 3
    assert (folder / "keep.txt").read_text() == "x"


def test_unknown_format_option_is_usage_error(cli, tmp_path):
    result = cli("ingest", good_log(tmp_path), "--out", tmp_path / "s", "--format", "parquet")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --format 'parquet'")


def test_ingest_names_a_mixture_without_logs_once(cli, tmp_path):
    mixtures = tmp_path / "mix.json"
    mixtures.write_text(json.dumps({"r0": {"a": 0.5, "b": 0.5}}))
    result = cli("ingest", mixtures, "--out", tmp_path / "s")
    fails(result, 3, mixtures)
    assert result.stderr.count("run 'r0'") == 1, result.stderr


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas not installed")
def test_ingest_never_imports_pandas(tmp_path):
    """pyarrow's `pa.array` and `Array.to_numpy` import pandas (0.2-0.3 s, more than a small
    ingest): the whole `regmixd ingest` of the sample logs runs without it."""
    code = (
        "import sys\n"
        "from regmixd_cli.cli import app\n"
        f"sys.argv = ['regmixd', 'ingest', {str(SAMPLE_LOGS / 'proxies' / 'logs')!r}, "
        f"'--out', {str(tmp_path / 'store')!r}]\n"
        "try:\n    app()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "store" / "trajectories.parquet").is_file()
