"""Write a small, realistic example of every non-native input format `regmixd ingest` reads.

    python sample_logs/formats/make_examples.py [--regmix-data DIR]

Standard library only (it does not import regmixd), deterministic: running it again rewrites
the same bytes. Each sub-directory ingests on its own, e.g.
`regmixd ingest sample_logs/formats/wandb --out store`:

    csv_long/     logs.csv (run,step,metric,value,tokens)      + mixtures.json
    csv_wide/     logs.csv (run,step,tokens,<metric>...)        + mixtures.csv
    hf/           <run>/[checkpoint-N/]trainer_state.json       + mixtures.csv
    wandb/        export.csv (Step, "<run> - <metric>", __MIN/__MAX) + mixtures.csv
    wandb_runs/   runs.csv (W&B's runs table: Name, State, ..., mixture.<domain>, summaries)
    tensorboard/  <run>/events.out.tfevents.<time>.<host>.<pid>.0     + mixtures.csv
    regmix/       the first 8 runs of RegMix's train_mixture_1m.csv / train_pile_loss_1m.csv

The toy proxies share one made-up world: loss(t) = floor(m) + a * (t / 100) ** -0.35, where a
domain-weighted floor makes mixtures matter, plus a little deterministic noise.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOMAINS = ("arxiv", "github", "pile_cc", "wikipedia_en")
# How much each domain lowers each validation loss (rows: metric domain, cols: train domain).
AFFINITY = {
    "pile_cc": (0.2, 0.1, 0.9, 0.5),
    "github": (0.2, 1.0, 0.1, 0.1),
}
STEPS = tuple(range(100, 1001, 100))
TOKENS_PER_STEP = 1_048_576
N_RUNS = 6


def mixtures(seed: int = 0) -> dict[str, dict[str, float]]:
    """N_RUNS Dirichlet(1) mixtures over DOMAINS, rounded to 3 decimals like RegMix's files."""
    rng = random.Random(seed)
    out: dict[str, dict[str, float]] = {}
    for i in range(N_RUNS):
        draws = [rng.gammavariate(1.0, 1.0) for _ in DOMAINS]
        total = sum(draws)
        weights = [round(d / total, 3) for d in draws]
        weights[-1] = round(1.0 - sum(weights[:-1]), 3)  # exact sum, as a mixture tool writes
        out[f"proxy-{i + 1:02d}"] = dict(zip(DOMAINS, weights, strict=True))
    return out


def loss(weights: dict[str, float], metric_domain: str, step: int, run_seed: int) -> float:
    """The toy world's validation loss of one domain at one step, rounded to 4 decimals."""
    gain = sum(a * weights[d] for a, d in zip(AFFINITY[metric_domain], DOMAINS, strict=True))
    floor = 4.2 - 1.1 * math.sqrt(gain)
    noise = random.Random(f"{run_seed}:{metric_domain}:{step}").gauss(0.0, 0.01)
    return round(floor + 3.0 * (step / 100) ** -0.35 + noise, 4)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")


def csv_text(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def mixtures_csv(mix: dict[str, dict[str, float]]) -> str:
    return csv_text([["run", *DOMAINS]] + [[run, *w.values()] for run, w in mix.items()])


def make_csv_long(mix: dict[str, dict[str, float]], out: Path) -> None:
    rows: list[list[object]] = [["run", "step", "metric", "value", "tokens"]]
    for i, (run, weights) in enumerate(mix.items()):
        for step in STEPS:
            for domain in AFFINITY:
                rows.append([run, step, f"val/{domain}", loss(weights, domain, step, i),
                             step * TOKENS_PER_STEP])
    write_text(out / "logs.csv", csv_text(rows))
    write_text(out / "mixtures.json", json.dumps(mix, indent=2) + "\n")


def make_csv_wide(mix: dict[str, dict[str, float]], out: Path) -> None:
    rows: list[list[object]] = [["run", "step", "tokens", *(f"val/{d}" for d in AFFINITY)]]
    for i, (run, weights) in enumerate(mix.items()):
        for step in STEPS:
            rows.append([run, step, step * TOKENS_PER_STEP,
                         *(loss(weights, d, step, i) for d in AFFINITY)])
    write_text(out / "logs.csv", csv_text(rows))
    write_text(out / "mixtures.csv", mixtures_csv(mix))


def trainer_state(weights: dict[str, float], seed: int, last_step: int) -> dict[str, object]:
    """A trainer_state.json as transformers' Trainer writes it, eval on a dict of datasets."""
    history: list[dict[str, object]] = []
    for step in range(50, last_step + 1, 50):
        train = loss(weights, "pile_cc", step, seed) + 0.05
        history.append({
            "epoch": round(step / 1000, 3), "grad_norm": round(1.5 / math.sqrt(step), 4),
            "learning_rate": 0.0004, "loss": round(train, 4),
            "num_input_tokens_seen": step * TOKENS_PER_STEP, "step": step,
        })
        if step % 100 == 0:
            for domain in AFFINITY:
                history.append({
                    "epoch": round(step / 1000, 3),
                    f"eval_{domain}_loss": loss(weights, domain, step, seed),
                    f"eval_{domain}_runtime": 1.92, f"eval_{domain}_samples_per_second": 266.4,
                    f"eval_{domain}_steps_per_second": 8.33, "step": step,
                })
    if last_step == 1000:
        history.append({"epoch": 1.0, "step": 1000, "total_flos": 1.3e15,
                        "train_loss": 5.1, "train_runtime": 812.5,
                        "train_samples_per_second": 630.2, "train_steps_per_second": 1.23})
    return {
        "best_global_step": None, "best_metric": None, "best_model_checkpoint": None,
        "epoch": round(last_step / 1000, 3), "eval_steps": 100, "global_step": last_step,
        "is_hyper_param_search": False, "is_local_process_zero": True,
        "is_world_process_zero": True, "log_history": history, "logging_steps": 50,
        "max_steps": 1000, "num_input_tokens_seen": last_step * TOKENS_PER_STEP,
        "num_train_epochs": 1, "save_steps": 500, "total_flos": 1.3e15,
        "train_batch_size": 512, "trial_name": None, "trial_params": None,
    }


def make_hf(mix: dict[str, dict[str, float]], out: Path) -> None:
    runs = list(mix.items())[:3]
    for i, (run, weights) in enumerate(runs):
        if i == 0:
            # A run saved twice: both checkpoints belong to it; their histories overlap.
            for step in (500, 1000):
                state = trainer_state(weights, i, step)
                write_text(out / run / f"checkpoint-{step}" / "trainer_state.json",
                           json.dumps(state, indent=2, sort_keys=True) + "\n")
            write_text(out / run / "checkpoint-1000" / "config.json",
                       json.dumps({"model_type": "llama", "hidden_size": 64}, indent=2) + "\n")
        else:
            write_text(out / run / "trainer_state.json",
                       json.dumps(trainer_state(weights, i, 1000), indent=2, sort_keys=True) + "\n")
    write_text(out / "mixtures.csv", mixtures_csv(dict(runs)))


def make_wandb(mix: dict[str, dict[str, float]], out: Path) -> None:
    runs = list(mix.items())[:4]
    metric = "eval/pile_cc_loss"
    header = ["Step"]
    for run, _ in runs:
        header += [f"{run} - {metric}", f"{run} - {metric}__MIN", f"{run} - {metric}__MAX"]
    rows: list[list[object]] = [header]
    for step in STEPS:
        row: list[object] = [step]
        for i, (_, weights) in enumerate(runs):
            if i == 3 and step > 700:
                row += ["", "", ""]  # a run that stopped early: empty cells
                continue
            value = loss(weights, "pile_cc", step, i)
            row += [value, round(value - 0.02, 4), round(value + 0.02, 4)]
        rows.append(row)
    write_text(out / "export.csv", csv_text(rows))
    write_text(out / "mixtures.csv", mixtures_csv(dict(runs)))


def make_wandb_runs(mix: dict[str, dict[str, float]], out: Path) -> None:
    """The Runs page's "Export as CSV": one row per run, metadata, config and summaries."""
    header = ["Name", "State", "Notes", "User", "Tags", "Created", "Runtime", "Sweep",
              "learning_rate", *(f"mixture.{d}" for d in DOMAINS), "_step",
              "eval/pile_cc_loss", "eval/github_loss", "train/loss"]
    rows: list[list[object]] = [header]
    for i, (run, weights) in enumerate(mix.items()):
        rows.append([run, "finished", "-", "alice", "proxy", f"2025-03-0{i + 1}T10:00:00",
                     812, "", 0.0004, *weights.values(), 1000,
                     loss(weights, "pile_cc", 1000, i), loss(weights, "github", 1000, i),
                     round(loss(weights, "pile_cc", 1000, i) + 0.05, 4)])
    write_text(out / "runs.csv", csv_text(rows))


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", _masked(header)) + data + struct.pack("<I", _masked(data))


def tfevents(scalars: list[tuple[int, dict[str, float]]], wall_time: float) -> bytes:
    """An event file as TensorBoard's writers make it: a file_version event, then one Event
    (wall_time, step, Summary of simple_value scalars) per step, in TFRecord framing."""
    first = _field(1, 1, struct.pack("<d", wall_time)) + _field(3, 2, b"brain.Event:2")
    records = [_record(first)]
    for step, values in scalars:
        summary = b"".join(
            _field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value)))
            for tag, value in values.items()
        )
        event = (_field(1, 1, struct.pack("<d", wall_time + step))
                 + _field(2, 0, _varint(step)) + _field(5, 2, summary))
        records.append(_record(event))
    return b"".join(records)


def make_tensorboard(mix: dict[str, dict[str, float]], out: Path) -> None:
    """Megatron-style event files: training loss and learning rate every 50 steps, one
    validation loss per domain every 100 steps."""
    runs = list(mix.items())[:4]
    for i, (run, weights) in enumerate(runs):
        scalars: list[tuple[int, dict[str, float]]] = []
        for step in range(50, 1001, 50):
            values = {"lm loss": round(loss(weights, "pile_cc", step, i) + 0.05, 4),
                      "learning-rate": 0.0004}
            if step % 100 == 0:
                values.update({f"val/{d}": loss(weights, d, step, i) for d in AFFINITY})
            scalars.append((step, values))
        name = f"events.out.tfevents.{1740000000 + i}.node{i}.{4000 + i}.0"
        path = out / run / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tfevents(scalars, 1740000000.0 + i))
    write_text(out / "mixtures.csv", mixtures_csv(dict(runs)))


def make_regmix(data: Path, out: Path, n_rows: int = 8) -> None:
    for name in ("train_mixture_1m.csv", "train_pile_loss_1m.csv"):
        lines = (data / name).read_text(encoding="utf-8").splitlines(keepends=True)
        write_text(out / name, "".join(lines[: n_rows + 1]))
    licence = data.parent / "LICENSE.regmix-MIT.txt"
    if licence.is_file():
        shutil.copyfile(licence, out / "LICENSE.regmix-MIT.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regmix-data", type=Path,
                        default=HERE.parents[2] / "shared" / "external" / "regmix" / "data",
                        help="RegMix's data/ directory (for the regmix/ example)")
    args = parser.parse_args()
    mix = mixtures()
    make_csv_long(mix, HERE / "csv_long")
    make_csv_wide(mix, HERE / "csv_wide")
    make_hf(mix, HERE / "hf")
    make_wandb(mix, HERE / "wandb")
    make_wandb_runs(mix, HERE / "wandb_runs")
    make_tensorboard(mix, HERE / "tensorboard")
    if (args.regmix_data / "train_mixture_1m.csv").is_file():
        make_regmix(args.regmix_data, HERE / "regmix")
    else:
        print(f"RegMix data not found at {args.regmix_data}; regmix/ left as it is")


if __name__ == "__main__":
    main()
