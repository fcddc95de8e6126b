"""Hugging Face datasets: per-stage interleave, concatenated."""

from __future__ import annotations

import json

from regmixd_cli._version import __version__
from regmixd_cli.domain import Schedule
from regmixd_cli.plan.export.common import (
    HF_FORMAT,
    SOURCES,
    ExportOptions,
    Files,
    nonzero_weights,
    require_batch,
    trainer_name,
)


def hf(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[Files, list[str]]:
    batch = require_batch(options, "hf", "each stage's length is given in samples")
    doc = {
        "format": HF_FORMAT,
        "follows": SOURCES["hf"],
        "description": (
            "Per stage: interleave_datasets([ds[n].to_iterable_dataset() for n in "
            "stage['datasets']], probabilities=stage['probabilities'], seed=SEED, "
            "stopping_strategy='all_exhausted').take(stage['samples']); then "
            "concatenate_datasets over the stages in order. Iterable datasets keep the mix "
            "lazy (a map-style interleave with a tiny probability and all_exhausted builds an "
            "index of billions of rows) and Trainer does not shuffle them, so the stages stay "
            "in order; a map-style dataset would be shuffled across stages. batch_size "
            "sequences per optimizer step (per-device batch x devices x accumulation), "
            "max_steps = target_steps. Zero-weight datasets are left out of a stage (a zero "
            "probability with all_exhausted never finishes)."
        ),
        "regmixd_version": __version__,
        "method": schedule.method,
        "target_steps": schedule.target_steps,
        "batch_size": batch,
        "units": {"steps": "optimizer steps", "samples": "sequences (rows)",
                  "batch_size": "sequences per optimizer step"},
        "domains": list(schedule.domains),
        "stages": [
            {
                "start_step": s.start_step,
                "end_step": s.end_step,
                "samples": (s.end_step - s.start_step) * batch,
                "datasets": [trainer_name(d, prefixes) for d, _ in nonzero_weights(schedule, s)],
                "probabilities": [w for _, w in nonzero_weights(schedule, s)],
            }
            for s in schedule.stages
        ],
    }
    return {"hf.json": json.dumps(doc, indent=2, ensure_ascii=False) + "\n"}, []

