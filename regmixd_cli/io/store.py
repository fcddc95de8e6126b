"""Read and write the trajectory store directory (SPEC section 3.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regmixd_cli import __version__
from regmixd_cli.domain import (
    DIVERGED,
    METRIC,
    RUN,
    SOURCE,
    STEP,
    STORE_SCHEMA,
    TRAJECTORY_COLUMNS,
    Store,
)
from regmixd_cli.errors import InputError
from regmixd_cli.io import atomic_dir, read_json, sha256_file, write_json

RUNS_FILE = "runs.parquet"
TRAJECTORIES_FILE = "trajectories.parquet"
MANIFEST_FILE = "manifest.json"


def build_manifest(
    domains: tuple[str, ...], runs: Any, trajectories: Any, inputs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest of a store; file hashes are added by `write_store`."""
    metrics = sorted(trajectories.get_column(METRIC).unique().to_list())
    return {
        "schema_version": STORE_SCHEMA,
        "domains": list(domains),
        "metrics": metrics,
        "n_runs": int(runs.height),
        "n_rows": int(trajectories.height),
        "n_diverged": int(runs.get_column(DIVERGED).sum()),
        "inputs": sorted(inputs, key=lambda item: (item["path"], item["sha256"])),
        "regmixd_version": __version__,
    }


def write_store(path: Path, store: Store) -> Store:
    """Write a store atomically (sorted, deterministic) and return it with its final manifest."""
    runs = store.runs.sort(RUN)
    trajectories = store.trajectories.select(TRAJECTORY_COLUMNS).sort([RUN, METRIC, STEP])
    manifest = dict(store.manifest)
    with atomic_dir(Path(path)) as tmp:
        # Statistics and compression are fixed so the same input gives the same bytes.
        opts: dict[str, Any] = {"compression": "zstd", "statistics": True}
        runs.write_parquet(tmp / RUNS_FILE, **opts)
        trajectories.write_parquet(tmp / TRAJECTORIES_FILE, **opts)
        manifest["files"] = {
            RUNS_FILE: sha256_file(tmp / RUNS_FILE),
            TRAJECTORIES_FILE: sha256_file(tmp / TRAJECTORIES_FILE),
        }
        write_json(tmp / MANIFEST_FILE, manifest)
    return Store(store.domains, runs, trajectories, manifest)


def store_hash(path: Path) -> str:
    """A stable identity of a store: the sha256 of its manifest (which holds the file hashes)."""
    return sha256_file(Path(path) / MANIFEST_FILE)


def read_store(path: Path, *, verify: bool = True) -> Store:
    """Read a store directory, checking its schema version and (by default) its file hashes."""
    import polars as pl

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a trajectory store (no such directory); run `regmixd ingest`")
    manifest = read_json(path / MANIFEST_FILE, "store manifest")
    if not isinstance(manifest, dict) or manifest.get("schema_version") != STORE_SCHEMA:
        found = manifest.get("schema_version") if isinstance(manifest, dict) else None
        raise InputError(
            f"{path / MANIFEST_FILE}: store schema {found!r} is not {STORE_SCHEMA!r}; "
            "re-ingest the logs with this version of regmixd"
        )
    files = manifest.get("files", {})
    for name in (RUNS_FILE, TRAJECTORIES_FILE):
        file = path / name
        if not file.is_file():
            raise InputError(f"{file}: missing from the store; re-ingest the logs")
        if verify and files.get(name) != sha256_file(file):
            raise InputError(
                f"{file}: does not match the store manifest (changed or corrupt); re-ingest the logs"
            )
    try:
        runs = pl.read_parquet(path / RUNS_FILE)
        trajectories = pl.read_parquet(path / TRAJECTORIES_FILE)
    except Exception as exc:  # polars raises several unrelated types for corrupt files
        raise InputError(f"{path}: unreadable Parquet in store ({exc.__class__.__name__})") from None
    domains = tuple(manifest["domains"])
    expected = {RUN, SOURCE, DIVERGED, *domains}
    if set(runs.columns) != expected or tuple(trajectories.columns) != TRAJECTORY_COLUMNS:
        raise InputError(f"{path}: store tables do not match the manifest; re-ingest the logs")
    return Store(domains, runs, trajectories, manifest)
