"""Read and write the model directory: `model.json` plus one `.ubj` per booster (SPEC 3.3).

This module handles bytes and JSON only; building XGBoost boosters is `regmixd_cli.model`'s job.
Reading verifies the schema version and the sha256 of every booster file, so a model that was
edited, truncated or copied from another tool is refused with a ModelError (exit 4).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from regmixd_cli.domain import MODEL_SCHEMA
from regmixd_cli.errors import ModelError
from regmixd_cli.io import atomic_dir, write_json

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
