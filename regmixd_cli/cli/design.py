"""`regmixd design`: proxy mixtures drawn the way RegMix drew them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regmixd_cli.cli._app import app, info, out
from regmixd_cli.cli._options import (
    SEED_MAX,
    ClusterAddress,
    Jobs,
    search_cluster,
    use_jobs,
)
from regmixd_cli.cli._output import STDOUT, is_design_file
from regmixd_cli.errors import InputError, UsageError

# Most proxy runs one design holds (a million runs of 100 domains is ~1 GB in memory).
MAX_DESIGN_RUNS = 1_000_000


@app.command()
def design(
    runs: Annotated[int, typer.Option("--runs", min=1, help="Number of proxy mixtures.")],
    out_path: Annotated[
        str, typer.Option("--out", help="Mixtures file: .json, .csv, or - for JSON on stdout.")
    ],
    prior: Annotated[
        Path | None,
        typer.Option("--prior", help="Prior mixture, a JSON file {domain: weight} (required "
                     "unless --refine)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Random seed.")] = 0,
    available_tokens: Annotated[
        Path | None,
        typer.Option(
            "--available-tokens", help="JSON {domain: unique tokens}; caps each domain's weight."
        ),
    ] = None,
    max_epochs: Annotated[
        float | None,
        typer.Option("--max-epochs", help="Epochs a proxy may spend on a domain [default: 15]."),
    ] = None,
    proxy_tokens: Annotated[
        float | None,
        typer.Option("--proxy-tokens", help="Tokens one proxy trains on [default: 1000 x 2^20]."),
    ] = None,
    constraints: Annotated[
        Path | None,
        typer.Option(
            "--constraints",
            metavar="FILE",
            help="Constraints TOML (as for schedule): min/max weights, and available_tokens x "
            "max_epochs capping each proxy's use of a domain.",
        ),
    ] = None,
    proxy_steps: Annotated[
        int | None,
        typer.Option("--proxy-steps", min=1, metavar="T",
                     help="Proxy length in steps; phased runs switch at the grid's switch "
                     "points l*T/(N+1). Required unless --static."),
    ] = None,
    switch_points: Annotated[
        int, typer.Option("--switch-points", min=1, metavar="N", help="Switch points N.")
    ] = 5,
    switch_share: Annotated[
        float | None,
        typer.Option("--switch-share", metavar="F", min=0.0, max=1.0,
                     help="Share of runs that switch mixture [default: 0.5]."),
    ] = None,
    static: Annotated[
        bool, typer.Option("--static", help="RegMix's design: every run keeps one mixture.")
    ] = False,
    prefix: Annotated[
        str | None,
        typer.Option("--prefix", metavar="X", help="Run names X000, X001, ... [default: p; "
                     "required with --refine]"),
    ] = None,
    refine: Annotated[
        Path | None,
        typer.Option("--refine", metavar="MODEL", help="Plan the verification round for this "
                     "fitted model instead: its schedule, static RegMix and their neighbours."),
    ] = None,
    jobs: Jobs = 0,
    cluster: ClusterAddress = None,
) -> None:
    """Design proxy mixtures as RegMix did: Dirichlet draws around the prior.

    The prior is tempered to p^0.5; each mixture is one draw at a strength picked from 15
    log-spaced values in [0.1, 5]. Weights under 2e-4 are zeroed and the rest rounded to
    multiples of 2e-4 summing to exactly 1; duplicates are dropped. With --available-tokens,
    a domain's weight is capped at min(max_epochs x available / proxy_tokens, 1). With
    --constraints every mixture also respects the file's min/max weights and token budgets
    (a budget caps one proxy's use: max_epochs x available_tokens / --proxy-tokens).

    By default the design is phased: the first phases are RegMix's design, and a share of the
    runs (--switch-share, default 0.5) switch at the grid's switch points (each with
    probability 1/2, at least one) to fresh draws. Output: run,start_step,<domain>... (.csv,
    one row per phase) or {run: [{"start_step": s, "weights": {...}}, ...]} (.json), the
    format `ingest --mixtures` and `simulate --mixtures` read. With --static: RegMix's design,
    {run: {domain: weight}} (.json) or run,<domain>... (.csv). Runs are named X000, X001, ...
    (--prefix X, default p).

    With --refine MODEL: the verification round for a fitted model. Half the runs follow the
    schedule the model recommends on the proxies' own step axis (the first exactly, the others
    neighbours: every stage redrawn close to it), half the static RegMix mixture (likewise);
    runs are named Xd000... and Xs000.... Train them, `ingest --append` them, and fit again with
    `fit --verify-prefix X`: their held-out error then picks the form and feeds the guard.

    Example: regmixd design --prior prior.json --runs 512 --proxy-steps 1000 --out design.csv

    Example: regmixd design --refine model --runs 64 --proxy-steps 1000 --prefix v --out v.csv
    """
    from regmixd_cli.files import atomic_write_text, check_output_file, read_json
    from regmixd_cli.sim.design import (
        MAX_EPOCHS,
        PROXY_TOKENS,
        SWITCH_SHARE,
        caps_from_tokens,
        design_mixtures,
        design_phased,
    )
    from regmixd_cli.sim.files import mixtures_text, phased_text
    from regmixd_cli.sim.proxies import run_ids
    from regmixd_cli.weights import PROXY_MEAN, UNIFORM, check_mixture

    if refine is not None:
        _refine(refine, runs, proxy_steps, prefix, seed, out_path, prior, static, switch_share,
                jobs, cluster)
        return
    if prior is None:
        raise UsageError("give --prior FILE (or --refine MODEL for a verification round)")
    prefix = "p" if prefix is None else prefix
    if runs > MAX_DESIGN_RUNS:  # refused up front: the mixtures are built in memory
        raise UsageError(f"--runs {runs}: at most {MAX_DESIGN_RUNS:,} proxy runs per design "
                         "(each is a training run); split a bigger design into several files")
    if str(prior) in (UNIFORM, PROXY_MEAN) and not prior.is_file():
        raise UsageError(
            f"--prior {prior}: design needs a prior FILE {{domain: weight}} (it has no model "
            "or runs to take the domain names from); for a uniform prior, write every domain "
            "with the same weight"
        )
    if static and switch_share is not None:
        raise UsageError("--switch-share applies to phased designs; drop it or --static")
    if not static and proxy_steps is None:
        raise UsageError("give --proxy-steps T (phased runs switch at its switch points), "
                         "or --static for RegMix's design")
    if not prefix or any(c in prefix for c in ",\"\n"):
        raise UsageError(f"--prefix {prefix!r}: give a non-empty name without commas or quotes")
    if out_path != STDOUT:
        from regmixd_cli.files import check_not_input

        check_not_input(out_path, [prior, available_tokens, constraints])
        check_output_file(Path(out_path), "--out", is_design_file, "a design file")
    data = read_json(prior, "prior mixture")
    if not isinstance(data, dict) or not data:
        raise InputError(f"{prior}: a prior must be a JSON object {{domain: weight}}")
    domains = tuple(data)
    weights = check_mixture(data, domains, str(prior))
    caps = None
    if available_tokens is None:
        if max_epochs is not None or proxy_tokens is not None:
            raise UsageError("--max-epochs and --proxy-tokens need --available-tokens FILE")
    else:
        caps = caps_from_tokens(
            _read_available(available_tokens, domains),
            MAX_EPOCHS if max_epochs is None else max_epochs,
            PROXY_TOKENS if proxy_tokens is None else proxy_tokens,
        )
    floors = None
    if constraints is not None:
        caps, floors = _constraint_bounds(
            constraints, domains, caps, PROXY_TOKENS if proxy_tokens is None else proxy_tokens
        )
    if static:
        mixtures = design_mixtures(weights, runs, seed, caps, floors=floors)
        text = mixtures_text(out_path, run_ids(runs, prefix), domains, mixtures)
    else:
        assert proxy_steps is not None
        share = SWITCH_SHARE if switch_share is None else switch_share
        mixtures, phases = design_phased(weights, runs, seed, proxy_steps, switch_points, share,
                                         caps, floors)
        text = phased_text(out_path, run_ids(runs, prefix), domains, mixtures, phases)
    if out_path == STDOUT:
        out.print(text, end="", markup=False, highlight=False)
    else:
        atomic_write_text(Path(out_path), text)
    info(f"Designed {runs} mixtures over {len(domains)} domains (seed {seed}) -> {out_path}")


def _constraint_bounds(
    path: Path, domains: tuple[str, ...], caps: tuple[float, ...] | None, proxy_tokens: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Caps and floors from a constraints file; budgets cap one proxy's use of a domain."""
    from regmixd_cli.plan.constraints import check_bounds
    from regmixd_cli.plan.constraints_file import read_constraints

    limits = read_constraints(path, domains, owner="the prior")
    assert limits is not None
    if limits.has_budget and caps is not None:
        raise UsageError(
            f"--available-tokens and {path} both give token budgets; give them in one place"
        )
    if limits.max_change is not None or limits.tokens_per_step is not None:
        info(f"{path}: [schedule] settings apply to schedules, not to proxy design; ignored")
    upper = [
        min(hi, b / proxy_tokens) if b is not None else hi
        for hi, b in zip(limits.upper, limits.budget, strict=True)
    ]
    if caps is not None:
        upper = [min(u, c) for u, c in zip(upper, caps, strict=True)]
    check_bounds(limits, upper)
    return tuple(upper), limits.lower


def _read_available(path: Path, domains: tuple[str, ...]) -> list[float | None]:
    """Unique tokens per domain from a JSON {domain: tokens}; domains left out are uncapped."""
    from regmixd_cli.files import read_json
    from regmixd_cli.weights import reject_unknown_domains

    data = read_json(path, "available-tokens file")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{domain: tokens}}")
    reject_unknown_domains(data, domains, str(path), "the prior has")
    values: list[float | None] = []
    for d in domains:
        raw = data.get(d)
        if raw is None:
            values.append(None)
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not raw >= 0:
            raise InputError(f"{path}: tokens of {d!r} must be a number >= 0, got {raw!r}")
        values.append(float(raw))
    return values


def _refine(
    model_dir: Path, runs: int, proxy_steps: int | None, prefix: str | None, seed: int,
    out_path: str, prior: Path | None, static: bool, switch_share: float | None,
    jobs: int = 0, cluster: str | None = None,
) -> None:
    """`design --refine MODEL`: the verification round (sim.refine)."""
    from regmixd_cli.cli._output import STDOUT, progress_bar
    from regmixd_cli.files import (
        atomic_write_text,
        check_not_input,
        check_output_file,
        input_paths,
    )
    from regmixd_cli.fit.files import load_model
    from regmixd_cli.sim.files import phased_text
    from regmixd_cli.sim.refine import design_refinement

    if prior is not None or static or switch_share is not None:
        raise UsageError("--refine plans around the model's own prior and plans; drop --prior, "
                         "--static and --switch-share")
    if proxy_steps is None or prefix is None:
        raise UsageError("--refine needs --proxy-steps T (the proxies' length) and --prefix X "
                         "(the names `fit --verify-prefix X` will know them by)")
    if not prefix or any(c in prefix for c in ",\"\n"):
        raise UsageError(f"--prefix {prefix!r}: give a non-empty name without commas or quotes")
    if runs > MAX_DESIGN_RUNS:
        raise UsageError(f"--runs {runs}: at most {MAX_DESIGN_RUNS:,} proxy runs per design")
    if out_path != STDOUT:
        check_not_input(out_path, input_paths(model_dir))
        check_output_file(Path(out_path), "--out", is_design_file, "a design file")
    use_jobs(jobs)  # before load_model: its boosters predict on this many threads
    model = load_model(model_dir)
    with search_cluster(cluster) as remote, \
            progress_bar("searching the plans to verify", 1) as progress:
        plan = design_refinement(model, runs, proxy_steps, prefix, seed, executor=remote)
        progress(1, 1)
    text = phased_text(out_path, plan.runs, model.domains, plan.first, plan.phases)
    if out_path == STDOUT:
        out.print(text, end="", markup=False, highlight=False)
    else:
        atomic_write_text(Path(out_path), text)
    n_dynamic = sum(1 for r in plan.runs if r.startswith(prefix + "d"))
    info(f"Designed a verification round of {runs} runs for {model_dir}: {n_dynamic} follow its "
         f"schedule ({len(plan.dynamic.stages)} stages), {runs - n_dynamic} static RegMix "
         f"(first of each exact, the rest neighbours) -> {out_path}")
