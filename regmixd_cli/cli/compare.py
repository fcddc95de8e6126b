"""`regmixd predict` and `regmixd compare`: predicted loss of schedules and mixtures, side by side.

The two share how a plan is loaded (a schedule file, a mixture file, or a built-in).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regmixd_cli.cli._app import app, out, warn
from regmixd_cli.cli._options import (
    SEED_MAX,
    ClusterAddress,
    Jobs,
    search_cluster,
    use_jobs,
)
from regmixd_cli.cli._output import print_json, progress_bar
from regmixd_cli.cli._plots import check_plot, check_plot_replaceable, write_plot
from regmixd_cli.errors import UsageError

if TYPE_CHECKING:
    from rich.table import Table

    from regmixd_cli.fit.objective import AnyModel as FittedModel
    from regmixd_cli.plan.compare import Plan, Prediction

METHOD_LABELS = {
    "regmix-d-offline": "RegMix-D",
    "regmix-static": "RegMix",
    "regmix-d-online": "online",
}
PLOT_HELP = "Also draw a figure: FILE.png or FILE.svg (needs `pip install 'regmixd[plot]'`)."
ALLOW_HELP = "Give domains the mixture leaves out weight 0 (unknown domains stay an error)."


def _load_plan(
    item: str,
    fitted: FittedModel,
    allow_missing: bool,
    builtin: tuple[Any, int, str] | None = None,
) -> tuple[Plan, int | None]:
    """An item as a plan, and the target steps it carries (schedules only)."""
    from regmixd_cli.domain import Schedule
    from regmixd_cli.plan.compare import (
        BUILTINS,
        builtin_plan,
        plan_from_mixture,
        plan_from_schedule,
    )
    from regmixd_cli.plan.mixture_file import read_plan_file

    if builtin is not None and item in BUILTINS:
        config, seed, sha = builtin
        return builtin_plan(item, fitted, config, seed, sha), None
    data = read_plan_file(Path(item))
    if isinstance(data, Schedule):
        plan = plan_from_schedule(item, data, fitted.domains, item, allow_missing=allow_missing)
        return plan, data.target_steps
    return plan_from_mixture(item, data, fitted.domains, item, allow_missing=allow_missing), None


def _axis(target_steps: int | None, carried: list[int | None], fitted: FittedModel) -> int:
    """--target-steps, else the first schedule file's, else the proxy length."""
    if target_steps is not None:
        if target_steps < 1:
            raise UsageError(f"--target-steps {target_steps}: must be at least 1")
        return target_steps
    return next((s for s in carried if s is not None), max(1, round(fitted.proxy_steps)))


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _top(weights: dict[str, float], n: int = 3) -> str:
    ranked = sorted(weights.items(), key=lambda dw: (-dw[1], dw[0]))
    return ", ".join(f"{d} {w:.1%}" for d, w in ranked[:n] if w > 0)


def prediction_table(result: dict[str, Any], target: str) -> Table:
    """`predict`: one row per grid point."""
    from rich.table import Table

    table = Table(title=f"{result['item']} ({result['method']}): predicted {target}")
    for name in ("point", "step", "proxy step", "mixture in force up to here", "pred. loss"):
        table.add_column(name, justify="left" if name.startswith("mixture") else "right")
    banded = any(p["interval"] is not None for p in result["points"])
    if banded:
        table.add_column("ensemble interval", justify="right")
    for p in result["points"]:
        loss = _loss(p["loss"]) + (" *" if p["outside_training_range"] else "")
        cells = [str(p["point"]), str(p["step"]), f"{p['proxy_step']:g}", _top(p["weights"]), loss]
        if banded:
            lo_hi = p["interval"]
            cells.append("-" if lo_hi is None else f"{lo_hi[0]:.4f} - {lo_hi[1]:.4f}")
        table.add_row(*cells)
    return table


def _caption(result: dict[str, Any]) -> str | None:
    if result["initial_loss"] is None or not result["switch_steps"]:
        return "endpoint-only model: final loss from the endpoint model (RegMix)"
    return (
        f"final: the endpoint model's (RegMix) for static items (e), the rollout's for "
        f"schedules. rollout and @step: the transition model from {result['initial_loss']:.4f} "
        f"at step {result['switch_steps'][0]} (the proxies' mean), the same start for every item."
    )


def comparison_tables(result: dict[str, Any]) -> list[Table]:
    """`compare`: losses per item, then each item's share of every domain."""
    from rich.table import Table

    items = result["items"]
    switch = result["switch_steps"]
    losses = Table(
        title=f"Predicted {result['target']} loss over {result['target_steps']} steps "
        f"(best: {result['best']})",
        caption=_caption(result),
        show_edge=False,
        pad_edge=False,
    )
    losses.add_column("item", overflow="fold", min_width=10)
    losses.add_column("method", no_wrap=True)
    losses.add_column("final", justify="right", no_wrap=True)
    losses.add_column("vs best", justify="right", no_wrap=True)
    losses.add_column("rollout", justify="right", no_wrap=True)
    # l_1 is the same for every item (the rollout starts there): it goes in the caption.
    for s in switch[1:]:
        losses.add_column(f"@{s}", justify="right", no_wrap=True)
    for item in items:
        marks = [" *" if p["outside_training_range"] else "" for p in item["points"]]
        final = _loss(item["final_loss"]) + (" e" if item["final_from"] == "endpoint" else "")
        if item["final_from"] != "endpoint" and marks:
            final += marks[-1]
        rollout = _loss(item["rollout_loss"]) + (marks[-1] if marks else "")
        if item["rollout_interval"] is not None:
            low, high = item["rollout_interval"]
            rollout += f"\n[{low:.4f}, {high:.4f}]"
        row = [
            item["item"],
            METHOD_LABELS.get(item["method"], item["method"]),
            final,
            f"{item['delta_to_best']:+.4f}",
            rollout,
            *(_loss(v) + mark for v, mark in
              zip(item["switch_losses"][1:], marks[1:-1], strict=True)),
        ]
        losses.add_row(*row)
    shares = Table(title="Share of tokens over the whole run", show_edge=False, pad_edge=False)
    shares.add_column("domain")
    for item in items:
        shares.add_column(item["item"], justify="right", overflow="fold")
    for domain in result["domains"]:
        shares.add_row(domain, *(f"{item['share'][domain]:.1%}" for item in items))
    tables = [losses, shares]
    if result.get("targets"):
        per_target = Table(title="Predicted final loss of each target (the objective combines "
                           "them)", show_edge=False, pad_edge=False)
        per_target.add_column("target")
        for item in items:
            per_target.add_column(item["item"], justify="right", overflow="fold")
        for metric in result["targets"]:
            per_target.add_row(metric, *(_loss(i["target_losses"][metric]) for i in items))
        tables.append(per_target)
    return tables


def _notes(predictions: list[Prediction]) -> None:
    if any(any(p.outside) for p in predictions):
        warn("* marks predictions outside the loss range the proxies reached at that point "
             "(the model extrapolates there)")


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Model directory (from `regmixd fit`).")],
    item: Annotated[
        str,
        typer.Argument(
            metavar="SCHEDULE|MIXTURE",
            help="Schedule JSON, or a mixture: JSON {domain: weight}, RegMix YAML, one-row CSV.",
        ),
    ],
    target_steps: Annotated[
        int | None,
        typer.Option("--target-steps", help="Steps of the axis shown (default: the schedule's, "
                     "or the proxy length)."),
    ] = None,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing-domains", help=ALLOW_HELP)
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the prediction as JSON.")] = False,
) -> None:
    """Predict the loss trajectory of a schedule or a mixture under a fitted model: the loss at
    every interval end of the grid (a rollout from the proxies' mean loss at t_1), and for a
    static mixture the endpoint model's (RegMix) final loss too.

    Example: regmixd predict runs/demo/model runs/demo/schedule.json
    """
    from regmixd_cli.fit.files import load_model
    from regmixd_cli.plan.compare import predict_plans, prediction_to_dict

    fitted = load_model(model)
    plan, carried = _load_plan(item, fitted, allow_missing)
    steps = _axis(target_steps, [carried], fitted)
    (prediction,) = predict_plans(fitted, [plan])
    result = prediction_to_dict(prediction, fitted, steps)
    if as_json:
        result = {"target": fitted.target, "target_steps": steps, **result}
        print_json(result)
        return
    if result["points"]:
        out.print(prediction_table(result, fitted.target))
    line = f"predicted final {fitted.target} loss: {_loss(prediction.final_loss)}"
    if prediction.final_from == "endpoint":
        line += " (endpoint model, RegMix"
        if prediction.losses:
            line += f"; the rollout says {_loss(prediction.losses[-1])}"
        line += ")"
    else:
        line += " (rollout of the transition model)"
    out.print(line, markup=False, highlight=False)
    for metric, loss in prediction.target_losses or ():
        out.print(f"  {metric}: {_loss(loss)}", markup=False, highlight=False)
    _notes([prediction])


@app.command()
def compare(
    model: Annotated[Path, typer.Argument(help="Model directory (from `regmixd fit`).")],
    items: Annotated[
        list[str],
        typer.Argument(
            metavar="ITEM...",
            help="Schedule JSON or mixture files, or the built-ins prior, static (RegMix) and "
            "offline (RegMix-D), computed from the model. Write ./prior for a file so named.",
        ),
    ],
    target_steps: Annotated[
        int | None,
        typer.Option("--target-steps", help="Steps of the axis shown (default: the first "
                     "schedule file's, or the proxy length)."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=SEED_MAX, help="Seed of the built-in searches.")
    ] = 0,
    candidates: Annotated[
        int, typer.Option("--candidates", help="Candidates per built-in search.")
    ] = 100_000,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing-domains", help=ALLOW_HELP)
    ] = False,
    plot: Annotated[Path | None, typer.Option("--plot", metavar="FILE", help=PLOT_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    jobs: Jobs = 0,
    cluster: ClusterAddress = None,
) -> None:
    """Compare schedules and mixtures under one fitted model: predicted final loss, loss at each
    switch point, each item's share of every domain, and the gap to the best.

    Example: regmixd compare runs/demo/model prior static offline --plot compare.png
    """
    from regmixd_cli.fit.files import load_model, model_hash
    from regmixd_cli.plan.compare import (
        axis_steps,
        comparison_to_dict,
        guard_rows,
        predict_plans,
    )
    from regmixd_cli.plan.search import SearchConfig

    fmt = check_plot(plot)
    if plot is not None:
        from regmixd_cli.files import check_not_input, input_paths

        check_not_input(plot, [*input_paths(model), *items], "--plot")
        check_plot_replaceable(plot)
    threads = use_jobs(jobs)  # before load_model: its boosters predict on this many threads
    config = SearchConfig(candidates=candidates, threads=threads)
    fitted = load_model(model)
    loaded = []
    with search_cluster(cluster) as remote:
        builtin = (dataclasses.replace(config, executor=remote), seed, model_hash(model))
        with progress_bar("loading and searching", len(items)) as progress:
            for i, item in enumerate(items):
                loaded.append(_load_plan(item, fitted, allow_missing, builtin))
                progress(i + 1, len(items))
    steps = _axis(target_steps, [c for _, c in loaded], fitted)
    predictions = predict_plans(fitted, [p for p, _ in loaded])
    result = comparison_to_dict(predictions, fitted, steps)
    verdicts = guard_rows(fitted, predictions)
    if verdicts:
        result["guard"] = verdicts
    if fmt is not None and plot is not None:
        from regmixd_cli.cli._plots import comparison_figure

        at = axis_steps(fitted.grid, fitted.proxy_steps, steps)
        write_plot(plot, comparison_figure(predictions, fitted.domains, at, fitted.target, fmt))
    if as_json:
        print_json(result)
        return
    for table in comparison_tables(result):
        out.print(table)
    for row in verdicts:
        out.print(_guard_line(row), markup=False, highlight=False)
    _notes(predictions)


def _guard_line(row: dict[str, Any]) -> str:
    """One line of evidence: would `schedule`'s guard hand this schedule out over static?

    The verdict, then the guard's own reason: the same words `schedule` prints, measured
    verification runs included."""
    verdict = "credible"
    if row["decision"] == "static":
        verdict = "not credible: static is better supported"
    elif row["decision"] == "verified":
        verdict = ("not credible against the measured plan of run "
                   f"{row['evidence']['verified_run']['run']}")
    return f"guard: {row['item']} vs {row['against']}: {verdict} ({row['reason']})"
