"""Figures as PNG or SVG bytes: a schedule, a comparison, and a fit's cross-validation.

matplotlib is an optional extra (`pip install 'regmixd[plot]'`) and is imported only inside the
functions here. Figures use matplotlib's object API (`Figure` + the Agg canvas), never pyplot,
so no global backend or window state is touched. SVG output is byte-stable: a fixed
`svg.hashsalt` for element ids and no date in the metadata.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from regmixd_cli.cli._app import info
from regmixd_cli.cli._output import is_plot_file
from regmixd_cli.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from regmixd_cli.domain import Schedule
    from regmixd_cli.fit.objective import AnyModel
    from regmixd_cli.plan.compare import Prediction

PLOT_FORMATS = {".png": "png", ".svg": "svg"}
INSTALL_HINT = "pip install 'regmixd[plot]'"
DPI = 110
SVG_SALT = "regmixd"


def plot_format(name: str) -> str:
    """`png` or `svg` from a file name's extension; anything else is a usage error."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in PLOT_FORMATS:
        raise UsageError(
            f"--plot {name}: unknown figure format {suffix or '(no extension)'!r}; "
            "end the file name in .png or .svg"
        )
    return PLOT_FORMATS[suffix]


def require_matplotlib() -> None:
    """Fail early, before any work, when the plot extra is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"--plot needs matplotlib, which is not installed; install it with {INSTALL_HINT}"
        ) from None


def _figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _render(fig: Any, fmt: str) -> bytes:
    """The figure's bytes; SVG ids are salted with a constant and the date is left out."""
    import matplotlib

    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT}):
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    return buffer.getvalue()


def _colours(n: int) -> list[Any]:
    """Distinct colours: tab10 up to 10 domains, tab20 up to 20, then repeated."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _step_series(
    bounds: Sequence[float], values: Sequence[Sequence[float]]
) -> tuple[list[float], list[list[float]]]:
    """Piecewise-constant series: each segment drawn from its start to its end (vertical jumps)."""
    xs: list[float] = []
    ys: list[list[float]] = [[] for _ in values[0]]
    for i, row in enumerate(values):
        xs += [bounds[i], bounds[i + 1]]
        for k, w in enumerate(row):
            ys[k] += [w, w]
    return xs, ys


def _stacked_weights(
    ax: Any, bounds: Sequence[float], weights: Sequence[Sequence[float]],
    domains: Sequence[str], colours: Sequence[Any],
) -> None:
    xs, ys = _step_series(bounds, weights)
    ax.stackplot(xs, ys, labels=list(domains), colors=list(colours), linewidth=0)
    for b in bounds[1:-1]:
        ax.axvline(b, color="white", linewidth=0.8)
    ax.set_xlim(bounds[0], bounds[-1])
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(_percent())


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


def _legend_right(ax: Any, handles: Any = None, labels: Any = None, title: str = "") -> None:
    """A legend outside the axes on the right, top entry = top of the stack."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
        handles, labels = handles[::-1], labels[::-1]
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              title=title or None, fontsize="small", title_fontsize="small")


def schedule_figure(schedule: Schedule, fmt: str) -> bytes:
    """The schedule as stacked areas of domain weights over the target run's steps."""
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    bounds = [s.start_step for s in schedule.stages] + [schedule.target_steps]
    colours = _colours(len(schedule.domains))
    _stacked_weights(ax, bounds, [s.weights for s in schedule.stages], schedule.domains, colours)
    ax.set_xlabel("training step of the target run")
    ax.set_ylabel("share of training tokens")
    target = schedule.provenance.get("target")
    n_stages, steps = len(schedule.stages), schedule.target_steps
    title = f"{schedule.method}: {n_stages} stage(s) over {steps:,} steps"
    if target:
        title += f", target {target}"
    if any(s.predicted_loss is not None for s in schedule.stages):
        # Each stage's predicted loss at its end, in a row above the areas.
        from matplotlib.transforms import blended_transform_factory

        above = blended_transform_factory(ax.transData, ax.transAxes)
        for stage in schedule.stages:
            if stage.predicted_loss is not None:
                ax.text((stage.start_step + stage.end_step) / 2, 1.015,
                        f"{stage.predicted_loss:.3f}", transform=above, ha="center",
                        va="bottom", fontsize="x-small", color="0.25")
        title += "\npredicted loss at the end of each stage above it"
    ax.set_title(title, fontsize="medium", pad=14)
    _legend_right(ax, title="domain")
    return _render(fig, fmt)


def comparison_figure(
    predictions: Sequence[Prediction],
    domains: Sequence[str],
    point_steps: Sequence[int],
    target: str,
    fmt: str,
) -> bytes:
    """Left: predicted loss at each grid point per item; right: each item's share per domain."""
    n_items = len(predictions)
    targets = [t for t, _ in predictions[0].target_losses or ()]
    fig = _figure(11.0 + 4.0 * bool(targets),
                  max(4.2, 1.2 + 0.45 * n_items, 1.2 + 0.3 * len(targets)))
    if targets:
        left, right, per_target = fig.subplots(1, 3, width_ratios=[1.5, 1.0, 1.1])
    else:
        left, right = fig.subplots(1, 2, width_ratios=[1.5, 1.0])
    item_colours = _item_colours(n_items)
    best = min(p.final_loss for p in predictions)
    has_paths = any(p.losses for p in predictions)
    for i, pred in enumerate(predictions):
        label = f"{pred.plan.name}: {pred.final_loss:.4f}"
        if pred.final_from == "endpoint" and pred.losses:
            label += " (x)"
        if pred.final_loss == best:
            label += " (best)"
        if pred.losses:
            left.plot(point_steps, pred.losses, marker="o", markersize=4, color=item_colours[i],
                      label=label, linewidth=1.6)
            if pred.bands is not None:
                left.fill_between(point_steps, [b[0] for b in pred.bands],
                                  [b[1] for b in pred.bands], color=item_colours[i], alpha=0.15,
                                  linewidth=0)
        else:
            left.barh([i], [pred.final_loss], color=item_colours[i], label=label)
        if has_paths and pred.endpoint_loss is not None:
            left.plot([point_steps[-1]], [pred.endpoint_loss], marker="x", markersize=7,
                      color=item_colours[i], linestyle="none")
    if has_paths:
        for s in point_steps[:-1]:
            left.axvline(s, color="0.8", linewidth=0.8, linestyle=":", zorder=0)
        left.set_xlim(0, point_steps[-1] * 1.03)
        left.set_xlabel("training step (dotted lines: switch points)")
        left.set_ylabel(f"predicted {target} loss")
        left.set_title("Predicted loss (lines: rollout of the transition model)",
                       fontsize="medium")
        handles, labels = left.get_legend_handles_labels()
        if any(p.endpoint_loss is not None for p in predictions):
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], marker="x", color="0.3", linestyle="none"))
            labels.append("x: endpoint model (RegMix)")
        left.legend(handles, labels, title="item: predicted final loss", fontsize="small",
                    title_fontsize="small", frameon=False, loc="upper right")
        # Zoom on the part where items differ: the first point is shared by every item.
        _zoom_late(left, predictions)
    else:
        left.set_yticks(range(n_items), [p.plan.name for p in predictions])
        left.invert_yaxis()
        left.set_xlabel(f"predicted final {target} loss (endpoint model)")
        left.set_title("Predicted final loss", fontsize="medium")
        lo = min(p.final_loss for p in predictions)
        hi = max(p.final_loss for p in predictions)
        pad = max(1e-3, 0.5 * (hi - lo))
        left.set_xlim(lo - pad, hi + pad)

    colours = _colours(len(domains))
    names = [p.plan.name for p in predictions]
    lefts = [0.0] * n_items
    for k, domain in enumerate(domains):
        widths = [p.share[k] for p in predictions]
        right.barh(range(n_items), widths, left=lefts, color=colours[k], label=domain, height=0.7)
        lefts = [a + b for a, b in zip(lefts, widths, strict=True)]
    right.set_yticks(range(n_items), names)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.xaxis.set_major_formatter(_percent())
    right.set_xlabel("share of tokens over the whole run")
    right.set_title("Mixture, averaged over the run", fontsize="medium")
    handles, labels = right.get_legend_handles_labels()
    _legend_right(right, handles, labels, title="domain")
    if targets:
        _target_dots(per_target, predictions, targets, item_colours)
    fig.suptitle(f"Candidate mixtures under the fitted model ({target})", fontsize="large")
    return _render(fig, fmt)


def _target_dots(
    ax: Any, predictions: Sequence[Prediction], targets: Sequence[str], colours: Sequence[Any]
) -> None:
    """A model of several targets: each item's predicted final loss of every target."""
    for i, pred in enumerate(predictions):
        losses = dict(pred.target_losses or ())
        ax.scatter([losses[t] for t in targets], range(len(targets)), color=colours[i],
                   s=22, label=pred.plan.name, zorder=3)
    ax.set_yticks(range(len(targets)), targets, fontsize="small")
    ax.invert_yaxis()
    ax.grid(axis="y", color="0.9", linewidth=0.8)
    ax.set_xlabel("predicted final loss")
    ax.set_title("Each target (the objective combines them)", fontsize="medium")
    ax.legend(fontsize="x-small", frameon=False, loc="lower right")


def _item_colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["Dark2" if n <= 8 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _zoom_late(ax: Any, predictions: Sequence[Prediction]) -> None:
    """Keep every point visible but leave room below the lowest one."""
    values = [v for p in predictions for v in p.losses]
    values += [p.endpoint_loss for p in predictions if p.endpoint_loss is not None]
    lo, hi = min(values), max(values)
    pad = max(1e-3, 0.05 * (hi - lo))
    ax.set_ylim(lo - pad, hi + pad)


def cv_figure(
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    grid: Sequence[float],
    form: str | None,
    target: str,
    fmt: str,
    targets: Sequence[tuple[str, Any, Mapping[str, np.ndarray]]] = (),
) -> bytes:
    """Held-out vs out-of-fold predicted loss: one panel per transition stage, one for T_p
    (and, for a model of several targets, one per target at T_p: `targets` holds each one's
    (metric, truth, predictions)).

    `truth` is (runs, N+1) losses at the grid; `predictions` holds `endpoint` (runs,) and, for
    a transition form, `<form>/next` (runs, N) teacher-forced and `<form>/rollout` (runs,).
    """
    from regmixd_cli.fit.metrics import mae, spearman

    panels: list[tuple[str, Any, list[tuple[str, Any]]]] = []
    n_stages = truth.shape[1] - 1
    if form is not None:
        for j in range(1, n_stages + 1):
            title = f"stage {j}: loss at t={grid[j]:.5g} from the true one at t={grid[j - 1]:.5g}"
            panels.append((title, truth[:, j], [(form, predictions[f"{form}/next"][:, j - 1])]))
    end: list[tuple[str, Any]] = [("endpoint model", predictions["endpoint"])]
    if form is not None:
        end.append((f"rollout ({form})", predictions[f"{form}/rollout"]))
    panels.append((f"final loss at T_p={grid[-1]:.5g}", truth[:, -1], end))
    for metric, held, preds in targets:
        series = [("endpoint model", preds["endpoint"])]
        if form is not None:
            series.append((f"rollout ({form})", preds[f"{form}/rollout"]))
        panels.append((f"{metric} at T_p", held[:, -1], series))

    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    fig = _figure(3.6 * n_cols, 3.3 * n_rows + 0.4)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).reshape(-1)
    markers = ["o", "^"]
    for ax, (title, held, series) in zip(axes, panels, strict=False):
        values = [*held.tolist()]
        lines = []
        for i, (name, pred) in enumerate(series):
            ax.scatter(held, pred, s=12, marker=markers[i % 2], alpha=0.7,
                       label=f"{name}: rho {spearman(held, pred):.3f}, MAE {mae(held, pred):.3f}")
            values += pred.tolist()
            lines.append(name)
        lo, hi = min(values), max(values)
        pad = 0.03 * (hi - lo) if hi > lo else 0.01
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", linewidth=0.8,
                linestyle="--", zorder=0)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("held-out loss", fontsize="small")
        ax.set_ylabel("predicted (out of fold)", fontsize="small")
        ax.legend(fontsize="x-small", frameon=False, loc="upper left")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"Cross-validation of the fit: {target} (dashed line = perfect prediction)",
                 fontsize="medium")
    return _render(fig, fmt)


def check_plot(path: Path | None) -> str | None:
    """The figure format of `--plot`, checked before any work (None without --plot)."""
    if path is None:
        return None
    from regmixd_cli.files import check_output_file

    fmt = plot_format(path.name)
    check_output_file(path, "--plot")
    require_matplotlib()
    return fmt


def check_plot_replaceable(path: Path | None) -> None:
    """An existing --plot file must be a figure (checked after the input checks, exit 2)."""
    if path is not None:
        from regmixd_cli.files import check_output_file

        check_output_file(path, "--plot", is_plot_file, "a PNG or SVG figure")


def write_plot(path: Path, data: bytes) -> None:
    """Write a figure atomically and say so on stderr."""
    from regmixd_cli.files import atomic_write_bytes

    atomic_write_bytes(path, data)
    info(f"wrote {path}")


def plot_schedule(schedule_file: Path, plot: Path) -> None:
    """`show SCHEDULE --plot FILE`: the schedule's weights as stacked areas over steps."""
    from regmixd_cli.plan.schedule_file import read_schedule

    fmt = check_plot(plot)
    assert fmt is not None
    write_plot(plot, schedule_figure(read_schedule(schedule_file), fmt))


def plot_cv(fitted: AnyModel, plot: Path, fmt: str) -> None:
    """`fit --plot FILE`: held-out vs out-of-fold predicted loss, per stage and at T_p."""

    preds = dict(fitted.cv_predictions)
    truth = preds.pop("truth")
    targets = [(m.target, m.cv_predictions["truth"], m.cv_predictions)
               for m in getattr(fitted, "members", ())]
    data = cv_figure(truth, preds, fitted.grid, fitted.form, fitted.target, fmt, targets)
    write_plot(plot, data)
