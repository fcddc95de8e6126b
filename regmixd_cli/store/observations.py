"""The long observation table every reader returns: run, step, tokens, metric, value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE

if TYPE_CHECKING:
    import polars as pl


def observation_schema() -> dict[str, Any]:
    """Column names and dtypes of every reader's observation table."""
    import polars as pl

    return {RUN: pl.String, STEP: pl.Int64, TOKENS: pl.Int64, METRIC: pl.String, VALUE: pl.Float64}


def empty_observations() -> pl.DataFrame:
    """An observation table with no rows."""
    import polars as pl

    return pl.DataFrame(schema=observation_schema())
