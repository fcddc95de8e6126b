"""Files of `simulate` and `design`: world JSON, mixtures files, native JSONL logs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli.errors import UsageError
from regmixd_cli.files import atomic_dir, atomic_write_text, dumps_json, read_json, sha256_file
from regmixd_cli.sim.world import world_from_dict, world_to_dict

if TYPE_CHECKING:
    import numpy as np

    from regmixd_cli.sim.world import SimulatedRuns, World

WORLD_FILE = "world.json"
MIXTURES_FILE = "mixtures.json"
PRIOR_FILE = "prior.json"
SETTINGS_FILE = "simulation.json"
LOGS_DIR = "logs"
SIMULATION_SCHEMA = "regmixd.simulation/v1"
VALUE_DECIMALS = 6


def read_world(path: Path) -> World:
    """Read a world.json; every problem is an InputError naming the file."""

    return world_from_dict(read_json(Path(path), "world file"), str(path))


def world_hash(path: Path) -> str:
    """sha256 of a world file, for provenance."""
    return sha256_file(Path(path))


def mixtures_document(
    runs: Sequence[str], domains: Sequence[str], weights: np.ndarray
) -> dict[str, dict[str, float]]:
    """{run: {domain: weight}}, the JSON mixtures format `ingest --mixtures` reads."""
    return {
        run: {d: float(w) for d, w in zip(domains, row, strict=True)}
        for run, row in zip(runs, weights, strict=True)
    }


def mixtures_csv(runs: Sequence[str], domains: Sequence[str], weights: np.ndarray) -> str:
    """`run,<domain>...` CSV text, weights written with the shortest exact repr."""
    lines = [",".join(["run", *domains])]
    lines += [
        ",".join([run, *(repr(float(w)) for w in row)])
        for run, row in zip(runs, weights, strict=True)
    ]
    return "\n".join(lines) + "\n"


def mixtures_text(
    path: Path | str, runs: Sequence[str], domains: Sequence[str], weights: np.ndarray
) -> str:
    """The mixtures file text for `path`: .csv gives CSV; .json and `-` give JSON."""
    suffix = Path(str(path)).suffix.lower()
    if str(path) == "-" or suffix == ".json":
        return dumps_json(mixtures_document(runs, domains, weights))
    if suffix == ".csv":
        return mixtures_csv(runs, domains, weights)
    raise UsageError(f"--out {path}: the format follows the extension; use .json or .csv (or -)")


def write_mixtures(
    path: Path, runs: Sequence[str], domains: Sequence[str], weights: np.ndarray
) -> None:
    """Write a mixtures file atomically, JSON or CSV by extension."""
    atomic_write_text(Path(path), mixtures_text(path, runs, domains, weights))


def jsonl_parts(sim: SimulatedRuns, n_parts: int) -> list[str]:
    """Native JSONL split over `n_parts` files: run i goes to part i % n_parts.

    Each part starts with its runs' mixture lines, then one observation line per run and
    evaluation, step by step, so runs interleave as they do in a live log.

    See docs/reference/input-formats.md.
    """
    n_parts = max(1, min(n_parts, len(sim.runs)))
    texts = []
    for part in range(n_parts):
        members = range(part, len(sim.runs), n_parts)
        lines = [json.dumps({"run": sim.runs[i], "mixture": _weights(sim, i)}) for i in members]
        for j, step in enumerate(sim.steps):
            for i in members:
                lines.append(
                    json.dumps(
                        {
                            "run": sim.runs[i],
                            "step": int(step),
                            "tokens": int(sim.tokens[j]),
                            sim.target_metric: round(float(sim.target[i, j]), VALUE_DECIMALS),
                            "train/loss": round(float(sim.train[i, j]), VALUE_DECIMALS),
                        }
                    )
                )
        texts.append("\n".join(lines) + "\n")
    return texts


def _weights(sim: SimulatedRuns, i: int) -> dict[str, float]:
    return {d: float(w) for d, w in zip(sim.domains, sim.mixtures[i], strict=True)}


def check_output_dir(path: Path) -> None:
    """Refuse to replace a directory that is not an earlier `simulate` output."""
    path = Path(path)
    if path.exists() and (
        not path.is_dir() or (any(path.iterdir()) and not (path / WORLD_FILE).is_file())
    ):
        raise UsageError(
            f"--out {path}: exists and is not a `regmixd simulate` output; choose another --out"
        )


def write_simulation(
    path: Path, world: World, sim: SimulatedRuns, settings: dict[str, Any], n_parts: int
) -> list[Path]:
    """Write world.json, prior.json, mixtures.json, simulation.json and logs/part-*.jsonl.

    The directory replaces `path` only once everything is written (docs/reference/exit-codes.md).
    """

    check_output_dir(path)
    parts = jsonl_parts(sim, n_parts)
    with atomic_dir(Path(path)) as tmp:
        (tmp / WORLD_FILE).write_text(dumps_json(world_to_dict(world)), encoding="utf-8")
        # The corpus token shares: the natural --prior for fit/schedule (segment 0 uses it).
        prior = dict(zip(world.domains, world.prior, strict=True))
        (tmp / PRIOR_FILE).write_text(dumps_json(prior), encoding="utf-8")
        document = mixtures_document(sim.runs, sim.domains, sim.mixtures)
        (tmp / MIXTURES_FILE).write_text(dumps_json(document), encoding="utf-8")
        record = {"schema_version": SIMULATION_SCHEMA, **settings}
        (tmp / SETTINGS_FILE).write_text(dumps_json(record), encoding="utf-8")
        (tmp / LOGS_DIR).mkdir()
        for k, text in enumerate(parts):
            (tmp / LOGS_DIR / f"part-{k}.jsonl").write_text(text, encoding="utf-8")
    return [Path(path) / LOGS_DIR / f"part-{k}.jsonl" for k in range(len(parts))]
