"""`regmixd online`: one online decision, or follow a growing training log.

The method: docs/explanation/method.md; steering a trainer: docs/how-to/online.md.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regmixd_cli.cli._app import app, err, in_flags, info, warn
from regmixd_cli.cli._options import (
    NO_CONSTRAINTS,
    SEED_MAX,
    ClusterAddress,
    ConstraintFlags,
    Jobs,
    prior_input,
    search_cluster,
    use_jobs,
    with_constraint_options,
)
from regmixd_cli.cli._output import is_schedule_file, print_json, write_stdout
from regmixd_cli.cli._signals import EARLY_STOP
from regmixd_cli.errors import InputError, UsageError

if TYPE_CHECKING:
    from regmixd_cli.online.controller import OnlineController
    from regmixd_cli.online.decision import Decision


@app.command()
@with_constraint_options
def online(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="Model directory written by `regmixd fit`.")
    ],
    target_steps: Annotated[
        int, typer.Option("--target-steps", help="Total steps of the target run.")
    ],
    step: Annotated[
        int | None, typer.Option("--step", help="Target step at which the loss was observed.")
    ] = None,
    loss: Annotated[
        list[str] | None,
        typer.Option("--loss", metavar="L|METRIC=L", help="Observed target-metric loss at "
                     "--step; for a model of several targets, METRIC=L once per target."),
    ] = None,
    param_ratio: Annotated[
        float, typer.Option("--param-ratio", help="Target / proxy parameter count.")
    ] = 1000.0,
    beta: Annotated[float, typer.Option("--beta", help="Cross-scale correction exponent.")] = 0.05,
    prior: Annotated[
        str | None,
        typer.Option(
            "--prior", help="Prior m0: JSON file, uniform or proxy-mean (default: the model's)."
        ),
    ] = None,
    candidates: Annotated[
        int, typer.Option("--candidates", help="Candidate mixtures per decision.")
    ] = 100_000,
    top_k: Annotated[int, typer.Option("--top-k", help="Candidates averaged.")] = 128,
    alpha: Annotated[float, typer.Option("--alpha", help="Dirichlet concentration.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Random seed.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Write the decision as JSON to stdout.")
    ] = False,
    follow: Annotated[
        Path | None,
        typer.Option("--follow", help="Training log to watch (JSONL, CSV, trainer_state.json)."),
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="Metric to follow (default: the model's target).")
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Run to follow in a multi-run log (default: the first)."),
    ] = None,
    log_format: Annotated[
        str, typer.Option("--format", help="Log format: auto, jsonl, csv or hf.")
    ] = "auto",
    state: Annotated[
        Path | None, typer.Option("--state", help="JSON file that keeps decisions across restarts.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Stop when the log has not grown for this many seconds."),
    ] = None,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between reads of the log.")] = 1.0,
    out_schedule: Annotated[
        Path | None,
        typer.Option(
            "--out-schedule", help="Write the decisions as schedule JSON here at the end."
        ),
    ] = None,
    force_dynamic: Annotated[
        bool,
        typer.Option("--force-dynamic", help="Steer even when the guard finds the model's "
                     "schedule not credible against static RegMix (recorded in the decision)."),
    ] = False,
    constraint_flags: ConstraintFlags = NO_CONSTRAINTS,
    jobs: Jobs = 0,
    cluster: ClusterAddress = None,
) -> None:
    """Choose the mixture for the next segment of a live run from its observed loss.

    One-shot: the mixture for the segment that starts at the switch point at or after --step
    (human summary on stderr; --json writes the decision to stdout). Follow mode (--follow LOG)
    watches a growing log and writes one JSON line per switch point to stdout; it stops after
    the last switch point, at an evaluation at/after --target-steps, on SIGINT/SIGTERM, or when
    the log has been idle for --timeout seconds.

    Example: regmixd online model/ --step 4167 --loss 3.21 --target-steps 25000 --json

    Example: regmixd online model/ --follow log.jsonl --target-steps 25000 --state st.json
    """
    stop: list[str] = EARLY_STOP  # signals caught since start-up (cli/_signals.py)
    if follow is None:
        _online(**locals())
        return
    # Follow mode stops cleanly (exit 0) on SIGINT/SIGTERM however early they come: while
    # the model loads too, not only once the watch loop runs.
    previous = {
        sig: signal.signal(sig, lambda s, _f: stop.append(signal.Signals(s).name))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        _online(**locals())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.clear()


def _online(  # noqa: PLR0913 - the options of `online`, checked and run
    model: Path, target_steps: int, step: int | None, loss: list[str] | None,
    param_ratio: float,
    beta: float, prior: str | None, candidates: int, top_k: int, alpha: float, seed: int,
    as_json: bool, follow: Path | None, metric: str | None, run: str | None, log_format: str,
    state: Path | None, timeout: float | None, poll: float, out_schedule: Path | None,
    constraint_flags: ConstraintFlags, force_dynamic: bool, stop: list[str], jobs: int,
    cluster: str | None, **_ignored: Any,
) -> None:
    """The body of `online` (its signal handlers already in place in follow mode)."""
    from regmixd_cli.online.controller import OnlineController

    one_shot = step is not None or loss is not None
    if follow is None and not (step is not None and loss is not None):
        raise UsageError("give --step and --loss for one decision, or --follow LOG to watch a run")
    if follow is not None and one_shot:
        raise UsageError("--step/--loss and --follow are exclusive; choose one mode")
    if follow is None:
        extra = [
            name
            for name, value in (
                ("--state", state),
                ("--timeout", timeout),
                ("--out-schedule", out_schedule),
                ("--metric", metric),
                ("--run", run),
            )
            if value is not None
        ]
        if extra:
            verb = "works" if len(extra) == 1 else "work"
            raise UsageError(f"{', '.join(extra)} only {verb} with --follow")
    if not poll > 0:
        raise UsageError(f"--poll must be > 0 seconds, got {poll}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {timeout}")
    if follow is not None:
        _check_follow_paths(follow, state, out_schedule)
        from regmixd_cli.files import check_not_input, input_paths

        sources = [*input_paths(model, follow), *prior_input(prior), constraint_flags.path]
        for option, path in (("--state", state), ("--out-schedule", out_schedule)):
            if path is not None:
                check_not_input(path, sources, option)
        if state is not None and out_schedule is not None and (
                state.resolve() == out_schedule.resolve()):
            raise UsageError(f"--out-schedule {out_schedule} is also --state; give two files")
        if out_schedule is not None:  # a file of another kind: after the input checks (exit 2)
            from regmixd_cli.files import check_output_file

            check_output_file(out_schedule, "--out-schedule", is_schedule_file,
                              "a schedule JSON")

    from regmixd_cli.plan.schedule import resolve_schedule_prior

    use_jobs(jobs)  # before the model loads: its boosters predict on this many threads
    controller = OnlineController(
        model,
        target_steps,
        param_ratio=param_ratio,
        beta=beta,
        candidates=candidates,
        top_k=top_k,
        alpha=alpha,
        seed=seed,
        force_dynamic=force_dynamic,
    )
    if prior is not None:  # default: the prior the model was fitted with
        resolved = resolve_schedule_prior(prior, controller.model)
        controller.prior = resolved.as_dict(controller.model.domains)
        controller.prior_source = resolved.source
    from regmixd_cli.cli._options import load_constraints

    controller.constraints = load_constraints(constraint_flags, controller.model.domains)
    targets = controller.model.targets
    if metric is not None and len(targets) > 1:
        raise UsageError(f"--metric follows one metric; the model has {len(targets)} targets "
                         f"({', '.join(targets)}), all read from the log: drop --metric")
    with search_cluster(cluster) as remote:
        controller.search_config = dataclasses.replace(controller.search_config,
                                                       executor=remote)
        if follow is None:
            assert step is not None and loss is not None
            _one_shot(controller, step, parse_losses(loss), as_json)
            return
        _follow(controller, follow, metric or targets[0] if len(targets) == 1 else list(targets),
                run, log_format, state, timeout, poll, out_schedule, stop)



def _check_follow_paths(log: Path, state: Path | None, out_schedule: Path | None) -> None:
    """Refuse unusable output paths before watching: a watcher may run for hours, and a path
    it cannot write would otherwise only fail at the end, after every decision was printed."""
    from regmixd_cli.files import check_output_file

    outputs = [("--state", state), ("--out-schedule", out_schedule)]
    for option, path in outputs:
        if path is not None:  # the same rule (and exit 3) as every other output
            check_output_file(path, option)
    named = {option: path.resolve() for option, path in outputs if path is not None}
    for option, path in named.items():
        if path == log.resolve():
            raise UsageError(f"{option} {log} is the followed log; choose another {option} file")
    if len(named) == 2 and named["--state"] == named["--out-schedule"]:
        raise UsageError(f"--state and --out-schedule are both {state}; give two different files")


def parse_losses(values: list[str]) -> float | dict[str, float]:
    """`--loss L` (one target) or `--loss METRIC=L` repeated (several)."""

    def number(text: str, given: str) -> float:
        try:
            return float(text)  # the range is checked with the decision
        except ValueError:
            raise UsageError(f"--loss {given!r}: give a number, or METRIC=VALUE") from None

    if len(values) == 1 and "=" not in values[0]:
        return number(values[0], values[0])
    losses: dict[str, float] = {}
    for given in values:
        metric, sep, text = given.rpartition("=")
        if not sep or not metric:
            raise UsageError(f"--loss {given!r}: with several --loss, give each as METRIC=VALUE")
        if metric in losses:
            raise UsageError(f"--loss: {metric!r} given twice")
        losses[metric] = number(text, given)
    return losses


def _one_shot(
    controller: OnlineController, step: int, loss: float | dict[str, float], as_json: bool
) -> None:
    decision = controller.decide_once(step, loss)
    for message in decision.warnings:
        warn(message)
    _print_decision(decision, controller)
    if as_json:
        print_json(_for_cli(decision))


def _print_decision(decision: Decision, controller: OnlineController) -> None:
    from rich.table import Table

    end = "end" if decision.end_step == controller.target_steps else f"step {decision.end_step}"
    table = Table(
        title=(
            f"Switch point {decision.switch} of {len(controller.switch_steps)}: "
            f"step {decision.start_step} -> {end}"
        ),
        show_header=True,
    )
    table.add_column("domain")
    table.add_column("weight", justify="right")
    for domain, weight in sorted(decision.weights.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(domain, f"{weight:.4f}")
    err.print(table)
    info(
        f"observed loss {decision.loss:.4f} at step {decision.step} (proxy step "
        f"{decision.proxy_step:.1f}); corrected {decision.corrected_loss:.4f}; predicted next "
        f"{decision.predicted_loss:.4f} (proxy scale), {decision.predicted_target_loss:.4f} "
        "(run scale)"
    )
    if decision.losses is not None:
        info("observed per target: " + ", ".join(
            f"{m} {v:.4f}" for m, v in decision.losses.items()))


# --------------------------------------------------------------------------- follow mode


def _follow(
    controller: OnlineController,
    log: Path,
    metric: str | list[str],
    run: str | None,
    log_format: str,
    state_path: Path | None,
    timeout: float | None,
    poll: float,
    out_schedule: Path | None,
    stop: list[str],
) -> None:
    """Watch `log` and decide at every switch point; the loop and the clock live here."""
    from regmixd_cli.online.follow import LogSource, TargetsSource, detect_log_format
    from regmixd_cli.online.state import load_state, save_state, state_settings

    fmt = detect_log_format(log, log_format)
    named = metric if isinstance(metric, str) else ",".join(metric)
    settings = state_settings(controller, named)
    if state_path is not None:
        controller.decisions = load_state(state_path, settings, controller)
    steps = ", ".join(map(str, controller.switch_steps))
    info(f"Following {log} ({fmt}) for {named}; switch points at steps {steps}")
    if controller.decisions:
        info(f"{len(controller.decisions)} decision(s) restored from {state_path}")
    if not log.exists():
        # Not an error: a watcher is often started before the trainer creates its log.
        warn(f"{log} does not exist yet; waiting for it to appear (check the --follow path)")
    source: LogSource | TargetsSource = (
        LogSource(log, fmt, metric, run) if isinstance(metric, str)
        else TargetsSource(log, fmt, metric, run))
    reason = "all switch points decided"
    finished = False
    idle_since = time.monotonic()
    while not controller.done:
        if stop:  # a signal that came while the model loaded
            reason = f"stopped by {stop[0]}"
            break
        observations, grew = source.read()
        for message in source.warnings:
            warn(message)
        source.warnings.clear()
        if source.metric_suspect():
            warn(source.metric_hint(early=True))
        finished = False
        for obs in observations:
            if obs.step >= controller.target_steps:
                finished = True
                break
            decision = controller.decide(obs.step, obs.value)
            if decision is None:
                continue
            if state_path is not None:  # state first: a restart never repeats a line
                save_state(state_path, settings, controller)
            # JSON Lines: one compact line per decision, flushed as it is made.
            write_stdout(json.dumps(_for_cli(decision), sort_keys=True,
                                    separators=(",", ":"), allow_nan=False) + "\n")
            seen = (f"{metric}={obs.value:g}" if isinstance(obs.value, float) else
                    ", ".join(f"{m}={v:g}" for m, v in obs.value.items()))
            info(
                f"switch point {decision.switch} (step {decision.start_step}) decided from "
                f"{seen} at {obs.where}"
            )
            for message in decision.warnings:
                warn(message)
            if controller.done:
                break
        if controller.done:
            break
        if finished:
            reason = f"training reached step {controller.target_steps}"
            break
        if stop:
            reason = f"stopped by {stop[0]}"
            break
        now = time.monotonic()
        if grew:
            idle_since = now
        elif timeout is not None and now - idle_since >= timeout:
            reason = f"timed out: {log} did not grow for {timeout:g} s"
            break
        _sleep(poll, stop)
    if state_path is not None:
        save_state(state_path, settings, controller)
    missing = source.missing_target() if isinstance(source, TargetsSource) else None
    if not controller.done and missing is not None:
        raise InputError(f"{log}: has no value of target {missing!r} (the model's targets: "
                         f"{named}); every target must be logged at the switch points")
    if out_schedule is not None:
        from regmixd_cli.files import write_json

        write_json(out_schedule, controller.to_schedule())
    n_done = len(controller.decisions)
    info(f"Stopped ({reason}); {n_done} of {len(controller.switch_steps)} switch points decided")
    if not controller.done and not finished:
        partial = source.partial_line()
        if partial is not None:
            warn(
                f"{log}:{partial}: the last line is incomplete (no newline) and was not read; "
                "did the trainer stop mid-write?"
            )
    apart = source.never_together() if isinstance(source, TargetsSource) else None
    if not controller.done and apart is not None:
        warn(apart)
    if not controller.done and not log.exists():
        warn(f"{log} never appeared; check the --follow path")
    elif not controller.done and not source.seen_metric and not source.metric_warned:
        warn(source.metric_hint())


def _sleep(seconds: float, stop: list[str]) -> None:
    """Sleep in short slices so a signal ends the wait promptly."""
    deadline = time.monotonic() + seconds
    while not stop:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def _for_cli(decision: Decision) -> dict[str, Any]:
    """A decision's JSON, its warnings worded in flags as the command line knows them."""
    data = decision.to_json()
    data["warnings"] = [in_flags(w) for w in data["warnings"]]
    return data
