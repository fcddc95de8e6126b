"""nanotron: one launch per stage, cumulative data_stages."""

from __future__ import annotations

from regmixd_cli.domain import Schedule
from regmixd_cli.plan.export.common import (
    ExportOptions,
    Files,
    file_header,
    flow_list,
    nonzero_weights,
    number_text,
    quote,
    trainer_name,
)

_NANOTRON_LAUNCH = '''\
{header}
"""Write the nanotron config for one launch: your base config plus stage_N.yaml.

Usage: python launch.py STAGE BASE_CONFIG.yaml OUT_CONFIG.yaml
then:  torchrun ... run_train.py --config-file OUT_CONFIG.yaml
Run stage 0, 1, ... in order; after a crash, run the same stage again (it resumes).
Needs PyYAML (a nanotron dependency).
"""

import os
import sys

import yaml

TARGET_STEPS = {target}


def merge(base, overlay):
    """Overlay wins; maps merge recursively, everything else is replaced."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: python launch.py STAGE BASE_CONFIG.yaml OUT_CONFIG.yaml")
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, f"stage_{{int(argv[1])}}.yaml"), encoding="utf-8") as handle:
        overlay = yaml.safe_load(handle)
    with open(argv[2], encoding="utf-8") as handle:
        config = merge(yaml.safe_load(handle), overlay)
    checkpoints = config.setdefault("checkpoints", {{}})
    # Every launch resumes from the run's own checkpoints (latest.txt); the first finds none.
    if checkpoints.get("resume_checkpoint_path") is None:
        checkpoints["resume_checkpoint_path"] = checkpoints["checkpoints_path"]
    # Without lr_decay_steps nanotron decays over THIS launch's train_steps: pin the whole run.
    scheduler = config["optimizer"]["learning_rate_scheduler"]
    if scheduler.get("lr_decay_steps") is None:
        start = scheduler.get("lr_decay_starting_step")
        if start is None:
            start = scheduler.get("lr_warmup_steps") or 0
        scheduler["lr_decay_steps"] = TARGET_STEPS - start
    with open(argv[3], "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)


if __name__ == "__main__":
    main(sys.argv)
'''


def nanotron(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[Files, list[str]]:
    del options  # nanotron's data_stages and train_steps are in optimizer steps already
    entries: list[list[str]] = []
    files: Files = {}
    for i, stage in enumerate(schedule.stages):
        pairs = nonzero_weights(schedule, stage)
        name = f"regmixd stage {i}: steps {stage.start_step}-{stage.end_step - 1}"
        entries.append([
            f"- name: {quote(name)}",
            f"  start_training_step: {stage.start_step + 1}",
            "  data:",
            "    dataset:",
            "      dataset_folder: "
            f"{flow_list([quote(trainer_name(d, prefixes)) for d, _ in pairs])}",
            f"      dataset_weights: {flow_list([number_text(w) for _, w in pairs])}",
        ])
        lines = file_header(schedule, "nanotron", [
            f"Launch {i} of {len(schedule.stages)}: merge into your config (launch.py does it),",
            f"train to step {stage.end_step} and stop. nanotron counts steps from 1, so stage",
            "k's start_training_step is its start_step + 1. run_train.py builds only the LAST",
            "data_stage's dataloader, so launch i lists stages 0..i; set",
            "checkpoints.resume_checkpoint_path to your checkpoints_path and",
            "optimizer.learning_rate_scheduler.lr_decay_steps for the whole run",
            f"({schedule.target_steps} steps minus lr_decay_starting_step, default",
            "lr_warmup_steps): launch.py does both.",
        ])
        lines += ["tokens:", f"  train_steps: {stage.end_step}", "data_stages:"]
        for entry in entries:
            lines += entry
        files[f"stage_{i}.yaml"] = "\n".join(lines) + "\n"
    files["launch.py"] = _NANOTRON_LAUNCH.format(
        header="\n".join(file_header(schedule, "nanotron", [])), target=schedule.target_steps
    )
    return files, []

