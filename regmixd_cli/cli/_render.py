"""Tables and bars for people: schedules, stores, models and fit reports (on a rich console).

`regmixd show` prints these to stdout; the other commands print them to stderr.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.markup import escape
from rich.table import Table

from regmixd_cli.cli._app import info, out, warn

if TYPE_CHECKING:
    from rich.console import Console

    from regmixd_cli.domain import Schedule, Store
    from regmixd_cli.fit.objective import AnyModel
    from regmixd_cli.plan.guard import Verdict
    from regmixd_cli.store.ingest import IngestResult


BAR_WIDTH = 60


# Distinct colours for the stacked bars; past this many domains they repeat (glyphs differ).
PALETTE = (
    "blue", "orange3", "green3", "red3", "medium_purple", "tan", "hot_pink", "grey62",
    "gold3", "dark_cyan", "light_sky_blue1", "light_salmon1", "pale_green1", "indian_red1",
    "plum2", "wheat1", "bright_white", "yellow", "cyan", "magenta",
)  # fmt: skip


# Without colour (NO_COLOR, or output not a terminal) each domain gets its own letter instead.
GLYPHS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def show_schedule(path: Path) -> None:
    """`regmixd show SCHEDULE`: the stage table and a stacked bar per stage, on stdout; then
    the guard's decision and reason when the file records them (`schedule`, `online`)."""
    from regmixd_cli.plan.schedule_file import read_schedule

    schedule = read_schedule(path)
    render_schedule(schedule, out)
    guard = schedule.provenance.get("guard")
    if isinstance(guard, dict) and isinstance(guard.get("decision"), str):
        run = schedule.provenance.get("verified_run")
        which = f" (the measured plan of run {run})" if isinstance(run, str) else ""
        out.print(f"guard: {guard['decision']}{which}: {guard.get('reason', '')}",
                  markup=False, highlight=False)


def render_schedule(schedule: Schedule, console: Console) -> None:
    """Print a schedule: a header line, a table of stages, a stacked bar per stage, a legend."""
    from rich.text import Text

    provenance = schedule.provenance
    n_stages = len(schedule.stages)
    header = f"{schedule.method}: {n_stages} stage(s) over {schedule.target_steps} steps"
    if provenance.get("target"):
        header += f", target {provenance['target']}"
    if provenance.get("model"):
        header += f", model {str(provenance['model'])[:12]}"
    console.print(header, markup=False, highlight=False)

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("stage", justify="right", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("fraction", justify="right", no_wrap=True)
    table.add_column("pred.\nloss", justify="right", no_wrap=True)
    targets = [t for t, _ in schedule.stages[-1].predicted_losses or ()]
    for metric in targets:
        table.add_column(f"pred.\n{metric}", justify="right", no_wrap=True)
    table.add_column("top weights", min_width=12)
    for i, stage in enumerate(schedule.stages):
        top = sorted(zip(schedule.domains, stage.weights, strict=True), key=lambda dw: -dw[1])
        loss = "" if stage.predicted_loss is None else f"{stage.predicted_loss:.4f}"
        table.add_row(
            str(i),
            f"{stage.start_step}-{stage.end_step}",
            f"{stage.start_fraction:.3f}-{stage.end_fraction:.3f}",
            loss,
            *(f"{dict(stage.predicted_losses or ()).get(m, math.nan):.4f}" for m in targets),
            Text(", ".join(f"{d} {w:.1%}" for d, w in top[:3] if w > 0)),
        )
    console.print(table)

    # Stacked bars below the table, so they keep their full width on narrow terminals.
    colour = console.color_system is not None
    styles = [PALETTE[i % len(PALETTE)] for i in range(len(schedule.domains))]
    glyphs = ["█" if colour else GLYPHS[i % len(GLYPHS)] for i in range(len(schedule.domains))]
    width = max(10, min(BAR_WIDTH, console.width - len(str(n_stages)) - 2))
    label = len(str(n_stages - 1))
    for i, stage in enumerate(schedule.stages):
        bar = Text(f"{i:>{label}} ")
        for j, cells in enumerate(_bar_widths(stage.weights, width)):
            if cells:
                bar.append(glyphs[j] * cells, style=styles[j] if colour else None)
        console.print(bar)
    legend = Text("legend: ")
    for j, domain in enumerate(schedule.domains):
        legend.append(glyphs[j], style=styles[j] if colour else None)
        legend.append(f" {domain}  ")
    console.print(legend)


def _bar_widths(weights: tuple[float, ...], width: int) -> list[int]:
    """Characters per domain, summing to `width` (largest remainders get the spare ones)."""
    raw = [w * width for w in weights]
    widths = [int(r) for r in raw]
    spare = width - sum(widths)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - widths[i]), i))
    for i in order[:spare]:
        widths[i] += 1
    return widths


def _show_phases(store: Store, limit: int = 20) -> None:
    """The phases of the first `limit` phased runs: start step and weights per phase."""
    import polars as pl

    from regmixd_cli.domain import RUN, STEP_START

    assert store.phases is not None
    counts = store.phases.group_by(RUN).len().filter(pl.col("len") > 1)
    phased = sorted(counts.get_column(RUN).to_list())
    table = Table(title=f"Phases ({len(phased)} phased run(s), first {min(limit, len(phased))})")
    table.add_column("run")
    table.add_column("start_step", justify="right")
    for domain in store.domains:
        table.add_column(domain, justify="right")
    shown = set(phased[:limit])
    for row in store.phases.iter_rows(named=True):
        if row[RUN] in shown:
            table.add_row(row[RUN], str(row[STEP_START]),
                          *(f"{row[d]:.4f}" for d in store.domains))
    out.print(table)


def show_store(path: Path) -> None:
    """Print a human summary of a trajectory store to stdout (runs, domains, metrics, steps)."""
    import polars as pl

    from regmixd_cli.domain import DIVERGED, METRIC, RUN
    from regmixd_cli.store.files import metric_summary, read_store

    store: Store = read_store(Path(path))
    manifest = store.manifest
    overview = Table(title=f"Trajectory store {path}", show_header=False)
    overview.add_column("", style="bold")
    overview.add_column("")
    overview.add_row("schema", str(manifest["schema_version"]))
    overview.add_row("runs", str(store.n_runs))
    overview.add_row("domains", str(len(store.domains)))
    overview.add_row("metrics", str(len(store.metrics)))
    overview.add_row("rows", str(manifest["n_rows"]))
    overview.add_row("diverged runs", str(manifest["n_diverged"]))
    if store.phases is not None:
        overview.add_row("phased runs", str(manifest.get("n_phased_runs", 0)))
    overview.add_row("inputs", "\n".join(i["path"] for i in manifest["inputs"][:10])
                     + ("\n..." if len(manifest["inputs"]) > 10 else ""))
    out.print(overview)

    domains = Table(title="Mixture weights across runs")
    for name in ("domain", "mean", "min", "max", "runs > 0"):
        domains.add_column(name, justify="left" if name == "domain" else "right")
    for domain in store.domains:
        col = store.runs.get_column(domain)
        mean, low, high = (cast(float, v) for v in (col.mean(), col.min(), col.max()))
        domains.add_row(domain, f"{mean:.4f}", f"{low:.4f}", f"{high:.4f}",
                        str(int((col > 0).sum())))
    out.print(domains)
    if store.phases is not None:
        _show_phases(store)

    stats = metric_summary(store)
    metrics = Table(title="Metrics")
    for name in ("metric", "runs", "steps per run", "step range", "value range"):
        metrics.add_column(name, justify="left" if name == "metric" else "right")
    for row in stats.iter_rows(named=True):
        steps = (str(row["n_min"]) if row["n_min"] == row["n_max"]
                 else f"{row['n_min']}-{row['n_max']}")
        lo, hi = row["lo"], row["hi"]
        values = "-" if lo is None else f"{lo:.4g}-{hi:.4g}"
        metrics.add_row(row[METRIC], str(row["runs"]), steps,
                        f"{row['first']}-{row['last']}", values)
    out.print(metrics)

    diverged = store.runs.filter(pl.col(DIVERGED)).get_column(RUN).to_list()
    if diverged:
        out.print(f"Diverged runs ({len(diverged)}): {', '.join(diverged[:20])}"
                  + (", ..." if len(diverged) > 20 else ""), markup=False, highlight=False)


def _fmt(value: Any, digits: int = 4) -> str:
    """A score for a table cell ("-" when absent, or not a number in a hand-edited report)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.{digits}f}"


def report_tables(report: dict[str, Any]) -> list[Table]:
    """The fit report as rich tables: transitions, endpoint, and the form chosen."""
    from regmixd_cli.fit.model import FORMS  # the forms in fit's order

    tables = []
    forms = [f for f in FORMS if report["transitions"] and f in report["transitions"][0]]
    if report["transitions"]:
        table = Table(
            title=f"Held-out next-interval loss, {report['target']} "
            f"({report['folds']}-fold CV by run)"
        )
        table.add_column("stage")
        table.add_column("steps")
        for form in forms:
            for name in ("rho", "MAE", "R²"):
                table.add_column(f"{form} {name}", justify="right")
        for row in report["transitions"]:
            cells = [str(row["stage"]), f"{row['t_from']:g} -> {row['t_to']:g}"]
            for form in forms:
                scores = row[form] if isinstance(row[form], dict) else {}
                cells += [_fmt(scores.get(k)) for k in ("spearman", "mae", "r2")]
            table.add_row(*cells)
        tables.append(table)
    table = Table(
        title=f"Held-out loss at T_p = {report['proxy_steps']:g} ({report['n_runs']} runs)"
    )
    table.add_column("predictor")
    table.add_column("rho", justify="right")
    table.add_column("MAE", justify="right")
    table.add_column("R²", justify="right")
    rows = [("endpoint model (RegMix)", report["endpoint"]["endpoint"])]
    rollout = report["endpoint"].get("rollout", {})
    # Form order, as `fit` printed it (the saved report's keys are sorted).
    rank = {f: i for i, f in enumerate(FORMS)}
    rows += [(f"rollout ({f})", rollout[f])
             for f in sorted(rollout, key=lambda f: (rank.get(f, len(rank)), f))]
    for name, scores in rows:
        table.add_row(name, *(_fmt(scores.get(k) if isinstance(scores, dict) else None)
                              for k in ("spearman", "mae", "r2")))
    tables.append(table)
    if report.get("evidence"):
        tables.append(_evidence_table(report["evidence"]))
    if isinstance(report.get("verification"), dict):
        tables.append(_observed_table(report["verification"]))
    if report.get("targets"):
        tables.append(_targets_table(report))
    return tables


def _targets_table(report: dict[str, Any]) -> Table:
    """A model of several targets: each target's held-out scores at T_p, and its weight."""
    objective = report["objective"]
    weights = dict(zip(objective["metrics"], objective["weights"], strict=True))
    reference = objective.get("reference") or {}
    table = Table(title=f"Each target at T_p (objective: {objective['kind']}, weights "
                  "normalised)")
    for name in ("target", "weight", "endpoint rho", "endpoint MAE", "rollout rho",
                 "rollout MAE", *(["reference"] if reference else [])):
        table.add_column(name, justify="left" if name == "target" else "right")
    for metric, entry in report["targets"].items():
        rollout = entry.get("rollout") or {}
        cells = [metric, _fmt(weights[metric], 3), _fmt(entry["endpoint"]["spearman"]),
                 _fmt(entry["endpoint"]["mae"]), _fmt(rollout.get("spearman")),
                 _fmt(rollout.get("mae"))]
        table.add_row(*cells, *([_fmt(reference.get(metric))] if reference else []))
    return table


def _observed_table(observed: dict[str, Any]) -> Table:
    """What the runs measured: the verification groups' mean final loss, and the run that
    ended lowest (the measured plan `schedule` weighs against its own)."""
    table = Table(title="Observed final loss (the guard weighs these against the model)")
    table.add_column("runs")
    table.add_column("final loss", justify="right")
    table.add_row(f"around the schedule ({observed.get('n_dynamic', '?')})",
                  _fmt(observed.get("dynamic")))
    table.add_row(f"around static RegMix ({observed.get('n_static', '?')})",
                  _fmt(observed.get("static")))
    best = observed.get("best")
    if isinstance(best, dict):
        table.add_row(f"ended lowest: {escape(str(best.get('run')))}", _fmt(best.get("loss")))
    return table


def _evidence_table(evidence: dict[str, Any]) -> Table:
    """Held-out MAE on what a schedule needs (phased proxies, verification runs), per form."""
    columns = [
        ("after_change", f"after a change ({evidence['n_after_change_rows']} rows)"),
        ("no_change", "no change"),
        ("phased_rollout", f"rollout, phased runs ({evidence['n_phased_runs']})"),
        ("verification_rollout", f"rollout, verification ({evidence['n_verification_runs']})"),
    ]
    table = Table(title="Held-out MAE on evidence a schedule needs (auto ranks by the first "
                  "of verification, after a change)")
    table.add_column("form")
    for _, title in columns:
        table.add_column(title, justify="right")
    for form, entry in evidence["forms"].items():
        table.add_row(form, *(_fmt(entry[k]["mae"]) if k in entry else "-" for k, _ in columns))
    return table


def evaluate_tables(report: dict[str, Any]) -> list[Table]:
    """The evaluate report as tables: the model's target (or objective), then each target."""
    tables = [_evaluate_table(report)]
    tables += [_evaluate_table(r) for r in report.get("targets", {}).values()]
    return tables


def _evaluate_table(report: dict[str, Any]) -> Table:
    """One evaluate report as one table."""
    table = Table(
        title=f"{report['target']} on {report['n_runs']} runs "
        f"(top-k overlap with k = {report['top_k']})"
    )
    for name in ("predictor", "rho", "Pearson r", "MAE", "top-k overlap"):
        table.add_column(name, justify="left" if name == "predictor" else "right")
    rows = [("endpoint model (RegMix)", report["endpoint"])]
    if "rollout" in report:
        rows.append(("rollout (transition model)", report["rollout"]))
    for name, s in rows:
        table.add_row(
            name,
            _fmt(s["spearman"]),
            _fmt(s["pearson"]),
            _fmt(s["mae"]),
            _fmt(s["top_k_overlap"], 2),
        )
    return table


def curve_rate_line(report: dict[str, Any]) -> str | None:
    """Which learning rate the curve booster was fitted with and the held-out numbers why
    (fit.crossval.choose_curve_rate); None when the model has no curve booster, the fit tried
    no other rate, or the record is unreadable."""
    record = report.get("curve_learning_rate")
    if report.get("choice", {}).get("form") != "curve-shift":
        return None  # the model has no curve booster
    try:
        base, fast = record["tried"]  # type: ignore[index]
        chosen = float(record["learning_rate"])  # type: ignore[index]
        numbers = (f"held-out next-interval MAE {_fmt(fast['next_mae'], 5)} at "
                   f"{fast['learning_rate']:g} vs {_fmt(base['next_mae'], 5)} at "
                   f"{base['learning_rate']:g}, rollout {_fmt(fast['rollout_mae'], 5)} vs "
                   f"{_fmt(base['rollout_mae'], 5)}")
        kept = {fast["learning_rate"]: fast, base["learning_rate"]: base}.get(chosen)
        if kept is None:
            return None  # a rate neither booster was fitted with: a hand-edited record
        trees = f"learning rate {chosen:g}, {int(kept['median_rounds'])} trees"
    except (KeyError, TypeError, ValueError):
        return None
    if kept is fast:
        return f"{trees} ({numbers}: within one standard error, so the faster booster)"
    return f"{trees} ({numbers}: worse by more than one standard error, so not the faster one)"


def curve_rate_rows(report: dict[str, Any], targets: Any = ()) -> list[tuple[str, str]]:
    """("curve booster", line) for a model of one target; one row per target (named) for a
    model of several, whose targets each chose their own rate. `targets`: (metric, report)."""
    rows = [("curve booster", curve_rate_line(report))]
    rows += [(f"curve booster ({metric})", curve_rate_line(own)) for metric, own in targets]
    return [(label, line) for label, line in rows if line is not None]


def show_model(path: Path) -> None:
    """Print a model's summary and cross-validation report as tables on stdout."""
    from regmixd_cli.fit.files import load_model, read_model_dir

    load_model(Path(path))  # a summary of a model that cannot be used would mislead
    meta, _ = read_model_dir(Path(path))
    report = meta["report"]
    summary = Table(title=f"Model {path}", show_header=False)
    summary.add_column("field")
    summary.add_column("value")
    summary.add_row("objective" if "objective" in meta else "target", meta["target"])
    summary.add_row("domains", f"{len(meta['domains'])}: {', '.join(meta['domains'])}")
    summary.add_row("grid (proxy steps)", ", ".join(f"{t:g}" for t in meta["grid"]))
    summary.add_row("form", meta["form"] or "endpoint only (RegMix)")
    summary.add_row("choice", report["choice"]["reason"])
    targets = [(str(t.get("metric")), t.get("report") or {}) for t in meta.get("targets", [])
               if isinstance(t, dict)]
    for label, line in curve_rate_rows(report, targets):
        summary.add_row(label, line)
    summary.add_row(
        "runs", f"{report['n_runs']} used, {sum(map(len, report['excluded'].values()))} left out"
    )
    summary.add_row("prior", meta["prior_source"])
    out.print(summary)
    for table in report_tables(report):
        out.print(table)


def report_ingest(result: IngestResult, store: Store, out_dir: Path) -> None:
    """On stderr: the ingest's warnings and one summary line."""
    for message in result.warnings:
        warn(message)
    manifest = store.manifest
    info(
        f"Ingested {manifest['n_runs']} runs x {len(store.domains)} domains, "
        f"{len(manifest['metrics'])} metrics, {manifest['n_rows']} rows -> {out_dir}"
        + (f" ({len(result.diverged)} diverged: {', '.join(result.diverged[:5])}"
           f"{', ...' if len(result.diverged) > 5 else ''})" if result.diverged else "")
    )


def report_fit(fitted: AnyModel, one_grid_point: bool) -> None:
    """On stderr: runs left out of the fit, an endpoint-only fit, and where the prior came from.

    `one_grid_point`: the user asked for the endpoint model alone (--switch-points 0).
    """
    report = fitted.report
    warn_excluded(report["excluded"], fitted.proxy_steps)
    weak = weak_fit_warning(report)
    if weak is not None:
        warn(weak)
    if report["endpoint_only"] and one_grid_point:
        info("one grid point (--switch-points 0): fitted the endpoint model alone (RegMix); "
             "schedules from this model need --static")
    elif report["endpoint_only"]:
        warn(
            "the store has one observation per run (endpoint losses only): fitted the endpoint "
            "model alone (RegMix); schedules from this model need --static"
        )
    if fitted.prior_source == "proxy-mean":
        info("prior: proxy-mean (the mean mixture of the usable runs); change it with --prior")


# Held-out Spearman rho below which a fit is too weak to rank mixtures usefully.
WEAK_RHO = 0.8
# Fewer usable runs than this: the usual reason a fit is weak.
FEW_RUNS = 24


def weak_fit_warning(report: dict[str, Any]) -> str | None:
    """Why the cross-validation says this model ranks mixtures poorly, or None if it does not.

    The held-out rho is the one that matters for a schedule: the chosen form's rollout to the
    end (the endpoint model's for an endpoint-only fit).
    """
    import math

    endpoint = report.get("endpoint", {})
    form = report.get("choice", {}).get("form")
    rollout = endpoint.get("rollout", {})
    if form in rollout:
        rho, what = rollout[form].get("spearman"), f"{form} rollout"
    else:
        rho, what = endpoint.get("endpoint", {}).get("spearman"), "endpoint"
    if isinstance(rho, int | float) and math.isfinite(rho) and rho >= WEAK_RHO:
        return None
    n_runs = int(report.get("n_runs", 0))
    if not isinstance(rho, int | float) or not math.isfinite(rho):
        why = ("the held-out losses (or the predictions) do not vary, so no ranking can be "
               "scored: are the runs' mixtures or logs identical?")
        shown = "undefined"
    else:
        shown = f"{rho:.2f}"
        why = (f"only {n_runs} usable runs; add proxy runs" if n_runs < FEW_RUNS else
               "the mixtures explain little of the loss differences (noisy or too-similar "
               "runs); add runs that differ more")
    return (f"weak fit: held-out Spearman rho of the {what} is {shown} (< {WEAK_RHO}); "
            f"schedules from this model may be no better than chance: {why}")


def warn_excluded(excluded: dict[str, list[str]], proxy_steps: float) -> None:
    from regmixd_cli.fit.transitions import name_some

    if excluded["diverged"]:
        names = excluded["diverged"]
        warn(f"left out {len(names)} diverged run(s): {name_some(names)}")
    if excluded["short"]:
        names = excluded["short"]
        warn(
            f"left out {len(names)} run(s) whose target metric does not cover the grid "
            f"(up to step {proxy_steps:g}): {name_some(names)}"
        )
    if excluded.get("lacking_a_target"):
        names = excluded["lacking_a_target"]
        warn(f"left out {len(names)} run(s) that lack a usable value of some target: "
             f"{name_some(names)}")


def report_verdict(verdict: Verdict) -> None:
    """The guard's verdict on stderr: a warning when it replaced (or was forced past) static."""
    from regmixd_cli.plan.guard import FORCED, STATIC, VERIFIED

    if verdict.decision == STATIC:
        warn(f"guard: writing static RegMix instead of the dynamic schedule: "
             f"{verdict.reason} (--force-dynamic overrides)")
    elif verdict.decision == VERIFIED:
        run = verdict.evidence.get("verified_run", {}).get("run", "?")
        warn(f"guard: writing the plan of measured run {run} instead of the searched one: "
             f"{verdict.reason} (--force-dynamic overrides)")
    elif verdict.decision == FORCED:
        warn(f"guard: {verdict.reason}")
    else:
        info(f"guard: dynamic schedule kept: {verdict.reason}")
