"""The model directory: `model.json` plus one `.ubj` per booster (docs/reference/files.md).

`save_model`/`load_model` turn a `FittedModel` into files and back; `write_model_dir` and
`read_model_dir` handle the bytes and JSON. Reading verifies the schema version and the
sha256 of every booster file, so a model that was edited, truncated or copied from another
tool is refused with a ModelError (exit 4).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from regmixd_cli._version import __version__
from regmixd_cli.domain import MODEL_SCHEMA
from regmixd_cli.errors import InputError, ModelError, UsageError
from regmixd_cli.files import atomic_dir, dumps_json, sha256_file, write_json
from regmixd_cli.fit.metrics import clean
from regmixd_cli.fit.model import (
    CURVE,
    CURVE_SHIFT,
    ENDPOINT,
    FORMS,
    HISTORY,
    PER_STAGE,
    PER_STAGE_HISTORY,
    POINT,
    POOLED,
    FittedModel,
    default_threads,
    import_xgboost,
)
from regmixd_cli.fit.objective import Objective, ObjectiveModel, check_same_members

MODEL_FILE = "model.json"
# model.json's own integrity check (the boosters have theirs in `files`).
METADATA_HASH = "metadata_sha256"


def check_model_out(path: Path, force: bool = False) -> None:
    """Refuse (UsageError, exit 2) an --out that exists and is not a model directory, so a
    fit never deletes a directory it did not write; `force` allows it."""
    path = Path(path)
    if force or not path.is_dir() or path.is_symlink():
        return  # a symbolic link or a file is refused by `check_output_dir`, --force or not
    try:
        empty = not any(path.iterdir())
    except OSError as exc:
        raise InputError(f"{path}: cannot list it ({exc.strerror}); choose another --out") from None
    if not empty and not (path / MODEL_FILE).is_file():
        raise UsageError(f"--out {path}: exists and is not a model directory (no {MODEL_FILE}); "
                         "fit would replace it: choose another --out, or pass --force")


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
        document.pop(METADATA_HASH, None)
        document[METADATA_HASH] = metadata_hash(document)
        write_json(tmp / MODEL_FILE, document)


def metadata_hash(document: dict[str, Any]) -> str:
    """sha256 of model.json's canonical text without its own hash field: any edit to the
    metadata (renamed domains, a changed prior) no longer matches it."""
    rest = {key: value for key, value in document.items() if key != METADATA_HASH}
    return hashlib.sha256(dumps_json(rest).encode("utf-8")).hexdigest()


def _not_a_model(path: Path) -> str:
    """Why `path`, which is not a directory, is not a model (it may be another regmixd file)."""
    if not os.path.lexists(path):
        return "no such model directory; create one with `regmixd fit`"
    if path.name == MODEL_FILE:
        return f"give the model directory ({path.parent}), not its {MODEL_FILE}"
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError:
        head = ""
    if "regmixd.schedule/" in head:
        return ("a schedule file, not a model directory; give the directory written by "
                "`regmixd fit` (the schedule goes to `export`, `show` or `compare`)")
    return "a file, not a model directory; give the directory written by `regmixd fit`"


def read_model_dir(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """model.json and the verified bytes of every booster file it lists."""
    path = Path(path)
    file = path / MODEL_FILE
    if not path.is_dir():
        raise ModelError(f"{path}: {_not_a_model(path)}")
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
    try:
        digest = metadata_hash(document)
    except ValueError:  # NaN or infinity in a hand-edited file: not canonical JSON
        digest = ""
    if document.get(METADATA_HASH) != digest:
        raise ModelError(
            f"{file}: does not match its own {METADATA_HASH} (edited by hand or corrupt); a "
            "model is only read as `regmixd fit` wrote it: fit the model again"
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


def _versions() -> dict[str, str]:
    xgboost_version = import_xgboost().__version__
    return {"regmixd": __version__, "xgboost": xgboost_version, "numpy": np.__version__}


def model_metadata(model: FittedModel) -> dict[str, Any]:
    """Everything in model.json except the booster file hashes."""
    kinds = [ENDPOINT] + ([model.form] if model.form else [])
    return {
        "domains": list(model.domains),
        "target": model.target,
        "grid": list(model.grid),
        "proxy_steps": model.proxy_steps,
        "prior": model.prior,
        "prior_source": model.prior_source,
        "form": model.form,
        "residual": model.residual,
        "features": {kind: model.features(kind) for kind in kinds},
        "loss_ranges": [list(r) for r in model.loss_ranges],
        "initial_loss": clean(model.initial_loss, 12),
        "report": model.report,
        "store_sha256": model.store_sha256,
        "settings": model.settings,
        "versions": _versions(),
    }


def save_model(
    path: Path,
    model: FittedModel | ObjectiveModel,
    extra: Mapping[str, Any] | None = None,
    extra_blobs: Mapping[str, bytes] | None = None,
) -> None:
    """Write the model directory (model.json + one .ubj per booster) atomically.

    `extra` adds keys to model.json and `extra_blobs` files (e.g. an ensemble's replicas).
    A model of several targets writes the shared fields once, the objective's own
    `target`/`loss_ranges`/`initial_loss`/`report`, and each target's under `targets`; its
    boosters are named `t<i>_<name>.ubj`.
    """
    blobs = {f"{name}.ubj": bytes(b.save_raw("ubj")) for name, b in model.boosters.items()}
    blobs.update(extra_blobs or {})
    if isinstance(model, ObjectiveModel):
        # Each target chose its own curve booster rate (fit.crossval.choose_curve_rate): it
        # is recorded per target, not once for all.
        shared = model_metadata(model.members[0])
        shared["settings"] = {**shared["settings"], "xgboost": {
            k: v for k, v in shared["settings"]["xgboost"].items() if k != "curve_learning_rate"}}
        metadata = shared | {
            "target": model.target,
            "loss_ranges": [list(r) for r in model.loss_ranges],
            "initial_loss": clean(model.initial_loss, 12),
            "report": model.report,
            "objective": model.objective.record(),
            "targets": [
                {"metric": m.target, "loss_ranges": [list(r) for r in m.loss_ranges],
                 "initial_loss": clean(m.initial_loss, 12), "report": m.report,
                 "curve_learning_rate": m.settings["xgboost"].get("curve_learning_rate")}
                for m in model.members
            ],
        }
    else:
        metadata = model_metadata(model)
    write_model_dir(Path(path), metadata | dict(extra or {}), blobs)


def load_model(path: Path) -> FittedModel | ObjectiveModel:
    """Read and verify a model directory; any problem is a ModelError naming the file.

    A model of one target is a FittedModel (as `fit` with one --target writes it); a model of
    several is an ObjectiveModel holding one FittedModel per target.
    """
    path = Path(path)
    meta, blobs = read_model_dir(path)
    xgb = import_xgboost()
    try:
        if "objective" not in meta:
            return _member(meta, meta, blobs, "")
        objective = Objective.from_record(meta["objective"])
        entries = meta["targets"]
        if [str(e["metric"]) for e in entries] != list(objective.metrics):
            raise ValueError("`targets` do not match the objective's metrics")
        report = meta["report"]
        if report["objective"] != meta["objective"] or not isinstance(report["targets"], dict) \
                or set(report["targets"]) != set(objective.metrics) \
                or not all(isinstance(t, dict) and isinstance(t["endpoint"], dict)
                           for t in report["targets"].values()):
            raise ValueError("the report's `objective` and `targets` do not match `objective`")
        members = tuple(_member(meta, e | {"target": e["metric"]}, blobs, f"t{i}_")
                        for i, e in enumerate(entries, start=1))
        check_same_members(members, str(path / MODEL_FILE))
        return ObjectiveModel(
            objective=objective,
            members=members,
            report=dict(meta["report"]),
            loss_ranges=tuple((float(a), float(b)) for a, b in meta["loss_ranges"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, xgb.core.XGBoostError) as exc:
        raise ModelError(
            f"{path / MODEL_FILE}: incomplete or unreadable model ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); fit it again with `regmixd fit`"
        ) from None


def _member(
    meta: Mapping[str, Any], own: Mapping[str, Any], blobs: Mapping[str, bytes], prefix: str
) -> FittedModel:
    """One target's FittedModel: shared fields from `meta`, its own from `own`, its boosters
    from the files named `prefix<name>.ubj`."""
    xgb = import_xgboost()
    domains = tuple(str(d) for d in meta["domains"])
    grid = tuple(float(t) for t in meta["grid"])
    form = meta["form"]
    if form not in (None, *FORMS):
        raise ValueError(f"unknown form {form!r}")
    names = [ENDPOINT]
    if form == POOLED:
        names.append(POOLED)
    elif form == PER_STAGE:
        names += [f"stage_{j}" for j in range(1, len(grid))]
    elif form == CURVE_SHIFT and f"{prefix}{CURVE}.ubj" in blobs:
        names.append(CURVE)
    elif form == CURVE_SHIFT:  # phased store, or fitted before the `curve` booster
        names += [f"{POINT}_{j}" for j in range(1, len(grid))]
    elif form == PER_STAGE_HISTORY:
        names += [f"{HISTORY}_{j}" for j in range(1, len(grid))]
    boosters = {}
    for name in names:
        booster = xgb.Booster()
        booster.load_model(bytearray(blobs[f"{prefix}{name}.ubj"]))
        widths = {len(f) for f in meta.get("features", {}).values()}
        if widths and booster.num_features() not in widths:  # booster of another model
            raise ValueError(f"{prefix}{name}.ubj has {booster.num_features()} features, "
                             f"model.json lists {sorted(widths)}")
        booster.set_param({"nthread": default_threads()})
        boosters[name] = booster
    initial = own["initial_loss"]
    settings = dict(meta["settings"])
    if "curve_learning_rate" in own:  # one target of several: its own curve booster rate
        settings["xgboost"] = {**settings["xgboost"],
                               "curve_learning_rate": own["curve_learning_rate"]}
    return FittedModel(
        domains=domains,
        target=str(own["target"]),
        grid=grid,
        proxy_steps=float(meta["proxy_steps"]),
        prior={str(k): float(v) for k, v in meta["prior"].items()},
        prior_source=str(meta["prior_source"]),
        form=form,
        loss_ranges=tuple((float(a), float(b)) for a, b in own["loss_ranges"]),
        initial_loss=math.nan if initial is None else float(initial),
        report=dict(own["report"]),
        boosters=boosters,
        residual=bool(meta["residual"]),
        store_sha256=str(meta["store_sha256"]),
        settings=settings,
    )


def model_hash(path: Path) -> str:
    """The sha256 of model.json, which records every booster's hash."""
    return sha256_file(Path(path) / MODEL_FILE)
