"""Options shared by several commands: the constraint options of `schedule` and `online`.

What they mean: docs/how-to/constraints.md.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from regmixd_cli.cli._app import info
from regmixd_cli.errors import UsageError

if TYPE_CHECKING:
    from regmixd_cli.fit.parallel import Executor
    from regmixd_cli.plan.constraints import Constraints

ConstraintsFile = Annotated[
    Path | None,
    typer.Option(
        "--constraints",
        metavar="FILE",
        help="TOML: [domains.<name>] min/max/available_tokens/max_epochs, "
        "[schedule] tokens_per_step/max_change.",
    ),
]
MinWeights = Annotated[
    list[str] | None,
    typer.Option("--min", metavar="DOMAIN=W", help="Smallest weight of a domain (repeatable)."),
]
MaxWeights = Annotated[
    list[str] | None,
    typer.Option("--max", metavar="DOMAIN=W", help="Largest weight of a domain (repeatable)."),
]
AvailableTokens = Annotated[
    list[str] | None,
    typer.Option(
        "--available",
        metavar="DOMAIN=TOKENS",
        help="Unique tokens of a domain's corpus (repeatable); needs --tokens-per-step.",
    ),
]
MaxEpochs = Annotated[
    float | None,
    typer.Option("--max-epochs", help="Epochs allowed over every --available corpus [default: 1]."),
]
TokensPerStep = Annotated[
    float | None,
    typer.Option("--tokens-per-step", help="Target tokens per step (turns weights into tokens)."),
]
MaxChange = Annotated[
    float | None,
    typer.Option("--max-change", help="Largest L1 change between consecutive stages."),
]


@dataclass(frozen=True, slots=True)
class ConstraintFlags:
    """The seven constraint options of a command, as given (None: not given)."""

    path: Path | None = None
    min_weights: list[str] | None = None
    max_weights: list[str] | None = None
    available: list[str] | None = None
    max_epochs: float | None = None
    tokens_per_step: float | None = None
    max_change: float | None = None


# The options `with_constraint_options` adds to a command, in --help order.
_CONSTRAINT_PARAMETERS = (
    ("constraints", ConstraintsFile, "path"),
    ("min_weight", MinWeights, "min_weights"),
    ("max_weight", MaxWeights, "max_weights"),
    ("available", AvailableTokens, "available"),
    ("max_epochs", MaxEpochs, "max_epochs"),
    ("tokens_per_step", TokensPerStep, "tokens_per_step"),
    ("max_change", MaxChange, "max_change"),
)

NO_CONSTRAINTS = ConstraintFlags()

_Command = TypeVar("_Command", bound=Callable[..., Any])


def with_constraint_options(command: _Command) -> _Command:
    """Add the constraint options to a command that takes `constraint_flags: ConstraintFlags`.

    Typer builds a command's options from its signature, so the seven options are declared
    here once and the command receives them as one ConstraintFlags value.
    """
    hints = typing.get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    kept = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "constraint_flags"
    ]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
        for name, hint, _ in _CONSTRAINT_PARAMETERS
    ]
    kept = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        flags = ConstraintFlags(**{field: kwargs.pop(name) for name, _, field in
                                   _CONSTRAINT_PARAMETERS})
        return command(constraint_flags=flags, **kwargs)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=kept + added
    )
    wrapper.__annotations__ = {p.name: p.annotation for p in kept + added}
    return cast(_Command, wrapper)


def _pairs(values: list[str] | None, flag: str) -> dict[str, float] | None:
    if not values:
        return None
    out: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            out[name.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UsageError(f"{flag} {value!r}: expected DOMAIN=NUMBER")
    return out


def load_constraints(flags: ConstraintFlags, domains: tuple[str, ...]) -> Constraints | None:
    """The constraints of a command: `--constraints FILE`, overridden key by key by flags."""
    from regmixd_cli.plan.constraints_file import read_constraints

    path, available, max_epochs = flags.path, flags.available, flags.max_epochs
    if max_epochs is not None and not available and path is None:
        raise UsageError("--max-epochs needs --available DOMAIN=TOKENS (or --constraints FILE)")
    overrides: dict[str, Any] = {
        "min": _pairs(flags.min_weights, "--min"),
        "max": _pairs(flags.max_weights, "--max"),
        "available_tokens": _pairs(available, "--available"),
        "max_epochs": max_epochs,
        "tokens_per_step": flags.tokens_per_step,
        "max_change": flags.max_change,
    }
    limits = read_constraints(path, domains, overrides)
    if limits is not None and path is None and limits.has_budget and (
        limits.tokens_per_step is None
    ):
        raise UsageError(
            "--available needs --tokens-per-step N (the target's tokens per step) to turn "
            "weights into tokens; add it"
        )
    if limits is not None:
        from regmixd_cli.plan.constraints import check_bounds

        check_bounds(limits)  # min/max sums: fail before any work (budgets need the run length)
    return limits


def report_constraints(provenance: dict[str, Any]) -> None:
    """Say on stderr what the constraints did: a projected prior, tight searches, token use."""
    record = provenance.get("constraints")
    if not record:
        return
    if record.get("prior_projected"):
        info(
            "constraints: the prior breaks them; segment 0 uses the nearest feasible mixture "
            "(Euclidean projection onto the constrained simplex)"
        )
    for stage in record.get("stages", []):
        if "feasible_fraction" not in stage:
            continue
        share = stage["feasible_fraction"]
        how = (
            "sampled inside the feasible region"
            if stage["mode"] == "map"
            else "infeasible candidates dropped"
        )
        info(
            f"constraints: stage {stage['stage']}: {share:.2%} of Dirichlet candidates "
            f"feasible ({how})"
        )
    for domain, use in sorted(record.get("token_use", {}).items()):
        share = use["tokens_used"] / use["budget"] if use["budget"] > 0 else 0.0
        info(
            f"constraints: {domain} uses {use['tokens_used']:.4g} of its {use['budget']:.4g} "
            f"budgeted tokens ({share:.1%})"
        )

# Largest --seed: every random stream (numpy, XGBoost) takes a 32-bit unsigned seed; a
# negative or larger one is a usage error (exit 2) instead of a traceback.
SEED_MAX = 2**32 - 1

# ------------------------------------------------------------------ where work runs (--jobs)

Jobs = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        metavar="N",
        help="Processes/threads to use; 0 = every core [default: 0]. Results do not depend on it.",
    ),
]
ClusterAddress = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="ADDRESS",
        help="Send the independent work (fits, candidate batches of a search) to a running "
        "Dask scheduler (tcp://HOST:PORT); needs regmixd[dask]. Same results as local.",
    ),
]


@contextlib.contextmanager
def search_cluster(cluster: str | None) -> Iterator[Executor | None]:
    """`--cluster` for the candidate searches of a command (None: search here), closed when
    the block ends."""
    if not cluster:
        yield None
        return
    from regmixd_cli.fit.parallel import executor

    remote = executor(None, cluster)
    try:
        yield remote
    finally:
        remote.close()


def use_jobs(jobs: int) -> int:
    """Apply `--jobs` to prediction threads; the resolved count (0 -> every core)."""
    from regmixd_cli.fit.model import set_prediction_threads
    from regmixd_cli.fit.parallel import resolve_jobs

    n = resolve_jobs(jobs)
    set_prediction_threads(n)
    return n


def prior_input(prior: str | None) -> list[Path]:
    """`--prior` as an input path when it names a file (not `uniform`/`proxy-mean`), for the
    output-is-an-input checks."""
    return [Path(prior)] if prior is not None and Path(prior).exists() else []
