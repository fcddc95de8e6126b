"""Files of `simulate` and `design`: world JSON, mixtures files, native JSONL logs.

Also `stages_from_document`, the lenient reader `simulate score` needs: any schedule-like
document (regmixd's, an oracle's, a hand-written one) or a plain mixture, by fractions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli._version import __version__
from regmixd_cli.domain import SCHEDULE_SCHEMA
from regmixd_cli.errors import InputError, UsageError
from regmixd_cli.files import atomic_dir, atomic_write_text, dumps_json, read_json, sha256_file
from regmixd_cli.sim.families import DEFAULT_FAMILY, FAMILY_NAMES
from regmixd_cli.sim.world import (
    WORLD_SCHEMA,
    Dynamics,
    SimulatedRuns,
    Stage,
    World,
    check_stages,
    static_stages,
)
from regmixd_cli.weights import check_mixture

if TYPE_CHECKING:
    import numpy as np

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
    raise UsageError(f"``out`` {path}: the format follows the extension; use .json or .csv (or -)")


def phased_document(
    runs: Sequence[str],
    domains: Sequence[str],
    weights: np.ndarray,
    phases: Sequence[Sequence[tuple[int, np.ndarray]]],
) -> dict[str, list[dict[str, Any]]]:
    """{run: [{"start_step": s, "weights": {domain: weight}}, ...]}: the phased JSON format."""
    return {
        run: [
            {"start_step": int(step), "weights": {d: float(w) for d, w in zip(domains, row,
                                                                             strict=True)}}
            for step, row in [(0, first), *later]
        ]
        for run, first, later in zip(runs, weights, phases, strict=True)
    }


def phased_csv(
    runs: Sequence[str],
    domains: Sequence[str],
    weights: np.ndarray,
    phases: Sequence[Sequence[tuple[int, np.ndarray]]],
) -> str:
    """`run,start_step,<domain>...` CSV text, one row per phase (static runs: one row at 0)."""
    lines = [",".join(["run", "start_step", *domains])]
    for run, first, later in zip(runs, weights, phases, strict=True):
        for step, row in [(0, first), *later]:
            lines.append(",".join([run, str(int(step)), *(repr(float(w)) for w in row)]))
    return "\n".join(lines) + "\n"


def phased_text(
    path: Path | str,
    runs: Sequence[str],
    domains: Sequence[str],
    weights: np.ndarray,
    phases: Sequence[Sequence[tuple[int, np.ndarray]]],
) -> str:
    """The phased design file text for `path`: .csv gives CSV; .json and `-` give JSON."""
    suffix = Path(str(path)).suffix.lower()
    if str(path) == "-" or suffix == ".json":
        return dumps_json(phased_document(runs, domains, weights, phases))
    if suffix == ".csv":
        return phased_csv(runs, domains, weights, phases)
    raise UsageError(f"``out`` {path}: the format follows the extension; use .json or .csv (or -)")


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
        if sim.phases is not None:  # one more mixture line per later phase, with its start
            lines += [
                json.dumps({"run": sim.runs[i], "mixture": _as_dict(sim.domains, w),
                            "start_step": int(start)})
                for i in members for start, w in sim.phases[i]
            ]
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
    return _as_dict(sim.domains, sim.mixtures[i])


def _as_dict(domains: Sequence[str], row: np.ndarray) -> dict[str, float]:
    return {d: float(w) for d, w in zip(domains, row, strict=True)}


def check_output_dir(path: Path) -> None:
    """Refuse to replace a directory that is not an earlier `simulate` output."""
    path = Path(path)
    if path.exists() and (
        not path.is_dir() or (any(path.iterdir()) and not (path / WORLD_FILE).is_file())
    ):
        raise UsageError(
            f"``out`` {path}: exists and is not a `regmixd simulate` output; choose another ``out``"
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
        document: Any = mixtures_document(sim.runs, sim.domains, sim.mixtures)
        if sim.phases is not None:
            document = phased_document(sim.runs, sim.domains, sim.mixtures, sim.phases)
        (tmp / MIXTURES_FILE).write_text(dumps_json(document), encoding="utf-8")
        record = {"schema_version": SIMULATION_SCHEMA, **settings}
        (tmp / SETTINGS_FILE).write_text(dumps_json(record), encoding="utf-8")
        (tmp / LOGS_DIR).mkdir()
        for k, text in enumerate(parts):
            (tmp / LOGS_DIR / f"part-{k}.jsonl").write_text(text, encoding="utf-8")
    return [Path(path) / LOGS_DIR / f"part-{k}.jsonl" for k in range(len(parts))]


def world_to_dict(world: World) -> dict[str, Any]:
    """The world as its JSON document (schema regmixd.world/v1)."""

    per_domain = {
        "prior": world.prior,
        "available_runs": world.available,
        "early_usefulness": world.early,
        "late_usefulness": world.late,
        "train_offset": world.train_offset,
    }
    return {
        "schema_version": WORLD_SCHEMA,
        "seed": world.seed,
        "domains": list(world.domains),
        "target_metric": world.target_metric,
        "proxy_steps": world.proxy_steps,
        "tokens_per_step": world.tokens_per_step,
        "target": {
            "steps": world.target_steps,
            "param_ratio": world.param_ratio,
            "beta": world.beta,
        },
        "domain_parameters": {
            key: dict(zip(world.domains, values, strict=True)) for key, values in per_domain.items()
        },
        "dynamics": asdict(world.dynamics),
        "regmixd_version": __version__,
    } | _family_fields(world)


def _family_fields(world: World) -> dict[str, Any]:
    """`family` and `family_parameters` for a non-default family (absent: the default family,
    so its world.json stays byte-identical to earlier versions')."""
    if world.family == DEFAULT_FAMILY:
        return {}
    params = {k: dict(zip(world.domains, v, strict=True)) for k, v in world.family_params}
    return {"family": world.family, "family_parameters": params}


def world_from_dict(data: Any, where: str) -> World:
    """Parse a world document; anything missing or malformed is an InputError naming `where`."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: a world file must be a JSON object")
    if data.get("schema_version") != WORLD_SCHEMA:
        raise InputError(
            f"{where}: schema {data.get('schema_version')!r} is not {WORLD_SCHEMA!r}; "
            "give a world.json written by `regmixd simulate`"
        )
    try:
        domains = tuple(str(d) for d in data["domains"])
        params = data["domain_parameters"]
        per_domain = [
            tuple(float(params[key][d]) for d in domains)
            for key in ("prior", "available_runs", "early_usefulness",
                        "late_usefulness", "train_offset")
        ]  # fmt: skip
        raw = data["dynamics"]
        names = {f.name: f.type for f in fields(Dynamics)}
        values: dict[str, Any] = {
            k: int(raw[k]) if names[k] == "int" else float(raw[k]) for k in names
        }
        dyn = Dynamics(**values)
        target = data["target"]
        prior, available, early, late, offsets = per_domain
        family = str(data.get("family", DEFAULT_FAMILY))
        raw_family = data.get("family_parameters", {}) if family != DEFAULT_FAMILY else {}
        family_params = tuple(
            (str(k), tuple(float(raw_family[k][d]) for d in domains)) for k in sorted(raw_family)
        )
        world = World(
            int(data["seed"]), domains, prior, available, early, late, offsets, dyn,
            int(data["proxy_steps"]), int(data["tokens_per_step"]), int(target["steps"]),
            float(target["param_ratio"]), float(target["beta"]), str(data["target_metric"]),
            family, family_params,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: malformed world ({exc.__class__.__name__}: {exc})") from None
    if family not in FAMILY_NAMES:
        raise InputError(f"{where}: unknown world family {family!r} ({', '.join(FAMILY_NAMES)})")
    if family != DEFAULT_FAMILY and not family_params:
        raise InputError(f"{where}: family {family!r} needs its family_parameters")
    numbers = [v for group in per_domain for v in group] + [float(v) for v in asdict(dyn).values()]
    numbers += [v for _, group in family_params for v in group]
    if not domains or not all(math.isfinite(v) for v in numbers) or min(world.available) <= 0:
        raise InputError(f"{where}: world parameters must be finite, with available_runs > 0")
    if world.proxy_steps < 1 or dyn.integration_steps < 1:
        raise InputError(f"{where}: proxy_steps and integration_steps must be at least 1")
    return world


def stages_from_document(
    data: Any, world: World, where: str, *, allow_missing: bool = True
) -> list[Stage]:
    """Stages of a schedule JSON v1 document or of a plain mixture `{domain: weight}`.

    Reads only what scoring needs: each stage's fractions (or steps / target_steps) and
    weights. Domains the document leaves out get weight 0 if `allow_missing`, else they are
    InputErrors; unknown domains are InputErrors.
    """

    if not isinstance(data, dict) or not data:
        raise InputError(f"{where}: expected a schedule JSON or a mixture {{domain: weight}}")
    if "stages" not in data:
        return static_stages(
            check_mixture(data, world.domains, where, fill_missing=allow_missing)
        )
    if data.get("schema_version", SCHEDULE_SCHEMA) != SCHEDULE_SCHEMA:
        raise InputError(f"{where}: schema {data['schema_version']!r} is not {SCHEDULE_SCHEMA!r}")
    raw_stages = data["stages"]
    if not isinstance(raw_stages, list) or not raw_stages:
        raise InputError(f"{where}: `stages` must be a non-empty list")
    total = data.get("target_steps")
    stages: list[Stage] = []
    for i, raw in enumerate(raw_stages):
        at = f"{where}: stage {i}"
        if not isinstance(raw, dict) or not isinstance(raw.get("weights"), dict):
            raise InputError(f"{at}: expected an object with `weights` {{domain: weight}}")
        bounds = _stage_bounds(raw, total, at)
        weights = check_mixture(raw["weights"], world.domains, at, fill_missing=allow_missing)
        stages.append((*bounds, weights))
    try:
        check_stages(world, stages)
    except UsageError as exc:
        raise InputError(f"{where}: {exc}") from None
    return stages


def _stage_bounds(raw: dict[str, Any], total: Any, at: str) -> tuple[float, float]:
    keys = ("start_fraction", "end_fraction")
    if all(_is_number(raw.get(k)) for k in keys):
        return float(raw[keys[0]]), float(raw[keys[1]])
    steps = ("start_step", "end_step")
    if _is_number(total) and total > 0 and all(_is_number(raw.get(k)) for k in steps):
        return raw[steps[0]] / total, raw[steps[1]] / total
    raise InputError(f"{at}: needs start_fraction/end_fraction (or steps and target_steps)")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def mixture_array(
    mixtures: Mapping[str, Mapping[str, Any]], world: World, where: str
) -> tuple[tuple[str, ...], np.ndarray]:
    """Run ids and an (M, K) array from {run: {domain: weight}}, checked against the world."""
    import numpy as np


    if not mixtures:
        raise InputError(f"{where}: no mixtures")
    runs = tuple(mixtures)
    rows = [
        check_mixture(mixtures[r], world.domains, f"{where}: run {r!r}", fill_missing=True)
        for r in runs
    ]
    return runs, np.asarray(rows)
