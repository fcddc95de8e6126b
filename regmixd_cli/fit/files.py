"""Read and write the model directory: `model.json` plus one `.ubj` per booster (SPEC 3.3).

This module handles bytes and JSON only; building XGBoost boosters is `regmixd_cli.fit.model`'s job.
Reading verifies the schema version and the sha256 of every booster file, so a model that was
edited, truncated or copied from another tool is refused with a ModelError (exit 4).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from regmixd_cli.domain import MODEL_SCHEMA
from regmixd_cli.errors import ModelError
from regmixd_cli.files import atomic_dir, write_json

MODEL_FILE = "model.json"


def write_model_dir(path: Path, metadata: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """Write model.json (with schema version and booster hashes) and the booster files."""
    with atomic_dir(Path(path)) as tmp:
        for name, data in sorted(blobs.items()):
            (tmp / name).write_bytes(data)
        document = dict(metadata)
        document["schema_version"] = MODEL_SCHEMA
        document["files"] = {
            name: hashlib.sha256(data).hexdigest() for name, data in sorted(blobs.items())
        }
        write_json(tmp / MODEL_FILE, document)


def read_model_dir(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """model.json and the verified bytes of every booster file it lists."""
    path = Path(path)
    file = path / MODEL_FILE
    if not path.is_dir():
        raise ModelError(f"{path}: no such model directory; create one with `regmixd fit`")
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{file}: missing; {path} is not a regmixd model (run `regmixd fit`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{file}: unreadable ({exc.__class__.__name__}); fit the model again"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{file}:{exc.lineno}: corrupt model file ({exc.msg}); fit the model again"
        ) from None
    found = document.get("schema_version") if isinstance(document, dict) else None
    if found != MODEL_SCHEMA:
        raise ModelError(
            f"{file}: schema {found!r} is not {MODEL_SCHEMA!r}; not a model from this version "
            "of regmixd, fit it again"
        )
    _check_document(document, file)
    files = document.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelError(f"{file}: lists no booster files; fit the model again")
    blobs: dict[str, bytes] = {}
    for name, digest in sorted(files.items()):
        booster_file = path / str(name)
        if Path(str(name)).name != name or not booster_file.is_file():
            raise ModelError(f"{booster_file}: missing booster file; fit the model again")
        data = booster_file.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise ModelError(
                f"{booster_file}: does not match the hash in {MODEL_FILE} (edited or corrupt); "
                "fit the model again"
            )
        blobs[str(name)] = data
    return document, blobs


def _check_document(document: dict[str, Any], file: Path) -> None:
    """The fields every reader of a model relies on agree with each other (model.json is
    not hashed, so a hand edit shows up only here)."""

    def number(value: Any) -> bool:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value))

    domains = document.get("domains")
    problem = ""
    if (not isinstance(domains, list) or not domains
            or not all(isinstance(d, str) and d for d in domains)
            or len(set(domains)) != len(domains)):
        problem = "`domains` is not a list of distinct names"
    elif not isinstance(document.get("target"), str):
        problem = "`target` is not a metric name"
    else:
        prior, grid = document.get("prior"), document.get("grid")
        ranges, features = document.get("loss_ranges"), document.get("features")
        mix = [f"m:{d}" for d in domains]
        if (not isinstance(prior, dict) or set(prior) != set(domains)
                or not all(number(w) for w in prior.values())):
            problem = "`prior` does not give a weight for exactly the model's domains"
        elif (not isinstance(grid, list) or not grid or not all(number(t) for t in grid)
              or any(b <= a for a, b in zip(grid, grid[1:], strict=False))):
            problem = "`grid` is not an increasing list of steps"
        elif not isinstance(ranges, list) or not all(
                isinstance(r, list) and len(r) == 2 and all(number(v) for v in r)
                for r in ranges):
            problem = "`loss_ranges` is not a list of [low, high] pairs"
        elif not isinstance(features, dict) or not all(
                isinstance(f, list) and [n for n in f if str(n).startswith("m:")] == mix
                for f in features.values()):
            problem = "`features` do not match `domains`"
    if problem:
        raise ModelError(f"{file}: incomplete or unreadable model ({problem}; edited or "
                         "corrupt); fit it again with `regmixd fit`")
