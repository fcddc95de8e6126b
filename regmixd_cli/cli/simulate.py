"""`regmixd simulate` (proxy logs from a synthetic world) and its `score` and `oracle` commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regmixd_cli.cli._app import app, info
from regmixd_cli.cli._options import SEED_MAX
from regmixd_cli.cli._output import STDOUT, is_schedule_file, print_json, progress_bar
from regmixd_cli.errors import UsageError

if TYPE_CHECKING:
    from regmixd_cli.domain import ProgressFn

PROGRESS_MIN_RUNS = 256

simulate_app = typer.Typer(
    name="simulate",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(simulate_app, name="simulate")


@contextmanager
def _progress(description: str, total: int, show: bool = True) -> Iterator[ProgressFn | None]:
    """The progress bar, or no callback at all when `show` is false."""
    if not show:
        yield None
        return
    with progress_bar(description, total) as progress:
        yield progress


@simulate_app.callback(invoke_without_command=True)
def simulate(
    ctx: typer.Context,
    runs: Annotated[
        int | None, typer.Option("--runs", min=1, help="Number of proxy runs (required).")
    ] = None,
    domains: Annotated[
        int | None,
        typer.Option(
            "--domains", min=1, help="Number of domains (taken from --mixtures if given)."
        ),
    ] = None,
    mixtures: Annotated[
        Path | None,
        typer.Option("--mixtures", help="Mixtures file (CSV or JSON) instead of designed ones."),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Proxy length T_p in steps.")] = 1000,
    eval_every: Annotated[
        int, typer.Option("--eval-every", min=1, help="Steps between logged evaluations.")
    ] = 50,
    tokens_per_step: Annotated[
        int, typer.Option("--tokens-per-step", min=1, help="Proxy tokens per step.")
    ] = 1_048_576,
    parts: Annotated[
        int, typer.Option("--parts", min=1, help="JSONL files to split logs over.")
    ] = 4,
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, max=SEED_MAX, help="Seed of the world, mixtures and noise."),
    ] = 0,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output directory (replaced atomically).")
    ] = None,
    world_file: Annotated[
        Path | None,
        typer.Option("--world", metavar="FILE", help="Train --mixtures in this world.json "
                     "(e.g. a verification round in the first round's world) instead of a new "
                     "world from --seed."),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(
            "--family",
            metavar="NAME",
            help="World family: shift (the default: usefulness moves from web text to curated "
            "text), saturation (usefulness depends on the loss level; small corpora repeat), "
            "curriculum (domains teach skills with prerequisites), order (what is seen last "
            "is kept: other groups' tokens make the model forget).",
        ),
    ] = None,
) -> None:
    """Simulate proxy runs in a synthetic world with a known truth, as native JSONL logs.

    Writes DIR/world.json (the world, regmixd.world/v1), DIR/prior.json (corpus token
    shares, the natural --prior for fit and schedule), DIR/mixtures.json,
    DIR/simulation.json (these settings) and DIR/logs/part-*.jsonl. Proxy mixtures are
    designed as RegMix did (see `regmixd design`) unless --mixtures gives them. The same
    options and seed give byte-identical files. Subcommands: `score` (true final loss of a
    schedule or mixture) and `oracle` (the world's best static mixture and schedule).
    --family picks the kind of world (recorded in world.json; see docs/explanation/quality.md).

    With --world FILE (and --mixtures), the runs train in that world instead, so a second
    round (`regmixd design --refine`) meets the same truth as the first; --seed then only
    seeds the runs' noise.

    Example: regmixd simulate --runs 64 --domains 6 --seed 0 --out sample_logs/proxies
    """
    if ctx.invoked_subcommand is not None:
        if any(v is not None for v in (runs, domains, mixtures, out_dir, family, world_file)):
            raise UsageError(
                "--runs, --domains, --mixtures, --world, --family and --out do not apply to "
                f"`simulate {ctx.invoked_subcommand}`; drop them"
            )
        return
    import numpy as np

    from regmixd_cli.files import check_output_dir, sha256_file
    from regmixd_cli.sim.design import MAX_EPOCHS, design_mixtures
    from regmixd_cli.sim.families import DEFAULT_FAMILY, get_family
    from regmixd_cli.sim.files import mixture_array, read_world, write_simulation
    from regmixd_cli.sim.proxies import run_ids, simulate_runs
    from regmixd_cli.sim.world import make_world

    if out_dir is None:
        raise UsageError("give --out DIR for the world and its logs")
    if family is not None and family != DEFAULT_FAMILY:
        get_family(family)  # an unknown name is a usage error before any work
    chosen = family or DEFAULT_FAMILY
    check_output_dir(out_dir)
    settings: dict[str, Any] = {
        "seed": seed,
        "steps": steps,
        "eval_every": eval_every,
        "tokens_per_step": tokens_per_step,
        "parts": parts,
    }
    if mixtures is not None:
        names, weights, later = _read_mixtures(mixtures)
        if domains is not None and domains != len(names):
            raise UsageError(f"--domains {domains} but {mixtures} names {len(names)} domains")
        if world_file is not None:
            if family is not None:
                raise UsageError("--world gives the world (and its family); drop --family")
            world = read_world(world_file)
            chosen = world.family
            settings["world"] = {"file": world_file.name, "sha256": sha256_file(world_file)}
        else:
            world = make_world(
                len(names), seed, domains=names, proxy_steps=steps,
                tokens_per_step=tokens_per_step, family=chosen,
            )
        ids, mix = mixture_array(weights, world, str(mixtures))
        phases = _phase_arrays(ids, later, world, str(mixtures)) if later else None
        if runs is not None:
            if runs > len(ids):
                raise UsageError(f"--runs {runs} but {mixtures} has only {len(ids)} mixtures")
            ids, mix = ids[:runs], mix[:runs]
            phases = phases[:runs] if phases is not None else None
        settings["mixtures"] = {"file": mixtures.name, "sha256": sha256_file(mixtures)}
    else:
        if world_file is not None:
            raise UsageError("--world trains the runs of --mixtures FILE; give --mixtures")
        if runs is None or domains is None:
            raise UsageError("give --runs N and --domains K (or --mixtures FILE)")
        world = make_world(
            domains, seed, proxy_steps=steps, tokens_per_step=tokens_per_step, family=chosen
        )
        # RegMix's bound: no domain above MAX_EPOCHS x its token share.
        caps = [min(MAX_EPOCHS * p, 1.0) for p in world.prior]
        mix = design_mixtures(world.prior, runs, seed, caps)
        phases = None
        ids = run_ids(runs)
        settings["mixtures"] = {"design": {"prior": "prior.json", "max_epochs": MAX_EPOCHS}}
    settings |= {"runs": len(ids), "domains": list(world.domains)}
    if chosen != DEFAULT_FAMILY:  # absent for the default family: its files stay as they were
        settings["family"] = chosen
    with _progress("simulating proxies", len(ids), len(ids) >= PROGRESS_MIN_RUNS) as progress:
        sim = simulate_runs(world, mix, seed, eval_every=eval_every, runs=ids, progress=progress,
                            phases=phases)
    files = write_simulation(out_dir, world, sim, settings, parts)
    final = sim.true_target[:, -1]
    info(
        f"Wrote {len(ids)} proxy runs x {len(sim.steps)} evaluations over {world.n_domains} "
        f"domains to {out_dir} ({len(files)} JSONL files); true final {world.target_metric} "
        f"{np.min(final):.3f}-{np.max(final):.3f}"
    )


def _read_mixtures(
    path: Path,
) -> tuple[tuple[str, ...], dict[str, dict[str, Any]], dict[str, list[tuple[int, Any]]]]:
    """Domains (first-seen order), {run: first phase's weights} and {run: later phases}."""
    from regmixd_cli.store.readers.mixtures import read_mixtures

    parsed = read_mixtures(path)
    weights = {run: dict(rec.weights) for run, rec in parsed.mixtures.items()}
    later = {run: [(s, dict(r.weights)) for s, r in sorted(recs.items())]
             for run, recs in parsed.phases.items()}
    names: dict[str, None] = {}
    for mix in [*weights.values(), *(w for p in later.values() for _, w in p)]:
        names.update(dict.fromkeys(mix))
    return tuple(names), weights, later


def _phase_arrays(
    ids: tuple[str, ...], later: dict[str, list[tuple[int, Any]]], world: Any, where: str
) -> list[list[tuple[int, Any]]]:
    """Every run's later phases as (start_step, weights in the world's domain order)."""
    from regmixd_cli.weights import check_mixture

    return [
        [(s, check_mixture(w, world.domains, f"{where}: run {r!r} start_step {s}",
                           fill_missing=True)) for s, w in later.get(r, [])]
        for r in ids
    ]


@simulate_app.command()
def score(
    world_path: Annotated[
        Path, typer.Argument(metavar="WORLD", help="world.json of a simulation.")
    ],
    schedule_path: Annotated[
        Path,
        typer.Argument(metavar="SCHEDULE_OR_MIXTURE", help="Schedule JSON or {domain: weight}."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Write the result as JSON to stdout.")
    ] = False,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing-domains",
            help="Give domains the mixture leaves out weight 0 (unknown domains stay an error).",
        ),
    ] = False,
) -> None:
    """True final loss of a schedule (or of one static mixture) in a simulated world.

    Stages are read from start_fraction/end_fraction and weights; every domain of
    the world needs a weight (0 is fine) unless --allow-missing-domains. Losses are at proxy
    scale; the target run's loss is that divided by param_ratio^beta (shown too).
    See docs/reference/file-formats.md.

    Example: regmixd simulate score sample_logs/proxies/world.json schedule.json
    """
    from regmixd_cli.files import read_json
    from regmixd_cli.sim.files import read_world, stages_from_document
    from regmixd_cli.sim.world import true_loss_curve

    world = read_world(world_path)
    stages = stages_from_document(
        read_json(schedule_path, "schedule or mixture"), world, str(schedule_path),
        allow_missing=allow_missing,
    )
    ends = true_loss_curve(world, stages, [end * world.proxy_steps for _, end, _ in stages])
    final = float(ends[-1])
    result = {
        "world": str(world_path),
        "schedule": str(schedule_path),
        "metric": world.target_metric,
        "n_stages": len(stages),
        "final_loss": final,
        "target_scale_final_loss": final / world.target_scale,
        "stage_end_losses": [float(v) for v in ends],
    }
    if as_json:
        print_json(result)
    info(
        f"True final {world.target_metric} of {schedule_path} ({len(stages)} stage"
        f"{'s' if len(stages) != 1 else ''}): {final:.4f} at proxy scale, "
        f"{final / world.target_scale:.4f} at target scale"
    )


@simulate_app.command()
def oracle(
    world_path: Annotated[
        Path, typer.Argument(metavar="WORLD", help="world.json of a simulation.")
    ],
    switch_points: Annotated[
        int, typer.Option("--switch-points", min=0, help="Switch points N (N+1 even stages).")
    ] = 5,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=SEED_MAX, help="Seed of the random search.")
    ] = 0,
    out_path: Annotated[
        str | None, typer.Option("--out", help="Write the oracle schedule JSON here (- = stdout).")
    ] = None,
    static_out: Annotated[
        Path | None, typer.Option("--static-out", help="Write the oracle static mixture JSON here.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Write losses and both answers as JSON to stdout.")
    ] = False,
) -> None:
    """The world's best static mixture and best (N+1)-stage schedule, by search on the true loss.

    Random Dirichlet candidates around the prior, refined by gradient descent on the true
    final loss; the schedule search starts from the best static mixture in every stage, so
    oracle schedule <= oracle static <= prior. Answers use the schedule JSON v1 layout with
    method oracle-schedule / oracle-static; predicted_loss holds the true loss at each
    stage's end. A summary goes to stderr.

    Example: regmixd simulate oracle sample_logs/proxies/world.json --out oracle.json
    """
    from regmixd_cli.files import check_output_file, write_json
    from regmixd_cli.sim.files import read_world, world_hash
    from regmixd_cli.sim.oracle import (
        METHOD_ORACLE_SCHEDULE,
        METHOD_ORACLE_STATIC,
        OracleConfig,
        find_oracle,
    )
    from regmixd_cli.sim.oracle import oracle_document as document

    if as_json and out_path == STDOUT:
        raise UsageError("--json and --out - both write to stdout; pick one")
    from regmixd_cli.files import check_not_input

    if out_path is not None and out_path != STDOUT:  # before the search, not after it
        check_not_input(out_path, [world_path])
        check_output_file(Path(out_path), "--out", is_schedule_file, "a schedule JSON")
    if static_out is not None:
        check_not_input(static_out, [world_path], "--static-out")
        check_output_file(static_out, "--static-out", is_schedule_file, "a schedule JSON")
        if out_path not in (None, STDOUT) and Path(out_path).resolve() == static_out.resolve():
            raise UsageError(f"--static-out {static_out} is also --out; give two files")
    world = read_world(world_path)
    config = OracleConfig()
    total = config.refine_starts * config.static_iterations + config.schedule_iterations
    with _progress("searching the oracle", total) as progress:
        found = find_oracle(world, switch_points, seed, config, progress)
    sha = world_hash(world_path)
    static_doc = document(world, found, METHOD_ORACLE_STATIC, seed, sha, config)
    schedule_doc = document(world, found, METHOD_ORACLE_SCHEDULE, seed, sha, config)
    if out_path == STDOUT:
        print_json(schedule_doc)
    elif out_path is not None:
        write_json(Path(out_path), schedule_doc)
    if static_out is not None:
        write_json(static_out, static_doc)
    if as_json:
        summary = {
            "world": str(world_path),
            "metric": world.target_metric,
            "prior_loss": found.prior_loss,
            "static_loss": found.static_loss,
            "schedule_loss": found.schedule_loss,
            "static": static_doc,
            "schedule": schedule_doc,
        }
        print_json(summary)
    info(f"True final {world.target_metric} in {world_path} (proxy scale):")
    info(f"  prior            {found.prior_loss:.4f}")
    info(f"  oracle static    {found.static_loss:.4f}")
    info(f"  oracle schedule  {found.schedule_loss:.4f}  ({switch_points + 1} stages)")
