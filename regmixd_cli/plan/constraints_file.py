"""Read a constraints TOML file (docs/how-to/constraints.md) into a `Constraints` value."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regmixd_cli.errors import InputError
from regmixd_cli.plan.constraints import Constraints, parse_constraints


def read_constraints(
    path: Path | None,
    domains: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    *,
    owner: str = "the model",
) -> Constraints | None:
    """Constraints from `path` (TOML) and flag `overrides`; None when neither gives any.

    `owner` names where `domains` come from, for messages about unknown domains.
    """
    data = None
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: constraints file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{path}: cannot read constraints file ({exc.__class__.__name__})"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML ({exc}); fix the file") from None
        except RecursionError:
            raise InputError(f"{path}: nested too deeply to be a constraints file; fix the "
                             "file") from None
    given = {k: v for k, v in (overrides or {}).items() if v not in (None, {}, [])}
    if data is None and not given:
        return None
    return parse_constraints(
        data, domains, str(path) if path is not None else "constraint flags", given,
        owner=owner,
    )
