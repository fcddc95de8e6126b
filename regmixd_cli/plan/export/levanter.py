"""Levanter: train_weights, switching inside one run."""

from __future__ import annotations

import math

from regmixd_cli.domain import Schedule
from regmixd_cli.errors import UsageError, param
from regmixd_cli.plan.export.common import (
    DEFAULT_MIXTURE_BLOCK_SIZE,
    ExportOptions,
    Files,
    file_header,
    flow_map,
    number_text,
    require_batch,
    trainer_name,
)


def levanter_starts(
    schedule: Schedule, batch: int, block: int
) -> tuple[list[int], list[str]]:
    """Stage start steps whose sequence index (step x batch) is a multiple of `block`, and notes."""
    unit = block // math.gcd(block, batch)
    starts, notes = [0], []
    for i, stage in enumerate(schedule.stages[1:], start=1):
        snapped = math.floor(stage.start_step / unit + 0.5) * unit
        if snapped <= starts[-1] or snapped >= schedule.target_steps:
            raise UsageError(
                f"{param('to')} levanter: stage {i} (step {stage.start_step}) has no start step "
                f"of its own that is a multiple of {unit} steps "
                f"({param('mixture_block_size')} {block} sequences, {param('batch_size')} "
                f"{batch}); give a smaller {param('mixture_block_size')}"
            )
        if snapped != stage.start_step:
            notes.append(
                f"levanter: stage {i} starts at step {snapped}, not {stage.start_step} "
                f"({snapped - stage.start_step:+d} steps): Levanter needs step x "
                f"{param('batch_size')} {batch} to be a multiple of "
                f"{param('mixture_block_size')} {block}"
            )
        starts.append(snapped)
    return starts, notes


def levanter(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[Files, list[str]]:
    batch = require_batch(options, "levanter", "Levanter turns a stage's start step into the "
                          "sequence index step x batch size")
    block = options.mixture_block_size
    if block is None:
        block = DEFAULT_MIXTURE_BLOCK_SIZE
    if block < 1:
        raise UsageError(f"{param('mixture_block_size')} {block}: give a positive integer")
    starts, notes = levanter_starts(schedule, batch, block)
    lines = file_header(schedule, "levanter", [
        "Switches mixture inside one run: merge into your Levanter config; names must be keys",
        "of data.configs (--prefix DOMAIN=NAME renames them). train_weights entries are",
        f"[optimizer step, weights]; Levanter multiplies the step by the batch size "
        f"({batch} sequences)",
        f"and needs that a multiple of data.mixture_block_size ({block}); trainer.train_batch_size",
        "and num_train_steps must stay as written. Resumes from its checkpoints as usual.",
    ])
    lines += [
        "trainer:",
        f"  train_batch_size: {batch}",
        f"  num_train_steps: {schedule.target_steps}",
        "data:",
        f"  mixture_block_size: {block}",
        "  train_weights:",
    ]
    for start, stage in zip(starts, schedule.stages, strict=True):
        weights = flow_map([
            (trainer_name(d, prefixes), number_text(w))
            for d, w in zip(schedule.domains, stage.weights, strict=True)
        ])
        lines.append(f"  - [{start}, {weights}]")
    return {"levanter.yaml": "\n".join(lines) + "\n"}, notes

