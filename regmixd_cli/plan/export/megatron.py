"""Megatron-LM: one launch per phase."""

from __future__ import annotations

from regmixd_cli.domain import Schedule
from regmixd_cli.plan.export.common import (
    ExportOptions,
    Files,
    file_header,
    nonzero_weights,
    number_text,
    require_batch,
    trainer_name,
)

_MEGATRON_LAUNCH = """\
#!/usr/bin/env bash
{header}
#
# Usage: launch.sh CHECKPOINT_DIR [--legacy] -- MEGATRON_COMMAND...
#   MEGATRON_COMMAND is your usual launch (e.g. torchrun ... pretrain_gpt.py ...) WITHOUT
#   --data-path, --train-iters/--train-samples, --lr-decay-*, --global-batch-size and
#   --phase-transition-iterations, and WITH --save CHECKPOINT_DIR --load CHECKPOINT_DIR.
#   Run the same line again after each exit until it reports that training is complete: it
#   reads CHECKPOINT_DIR/latest_checkpointed_iteration.txt, picks the phase that iteration lies
#   in, and appends that phase's arguments (phase_N.args, one argument per line). Megatron-LM
#   saves and exits at every --phase-transition-iterations step, so each launch runs one phase.
#   --legacy: for a Megatron-LM without --phase-transition-iterations, use legacy/phase_N.args
#   (--train-iters = phase end, --lr-decay-iters = the whole run, and
#   --override-opt_param-scheduler so the resumed scheduler accepts the changed --train-iters).
set -euo pipefail
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
[ "$#" -ge 1 ] || {{ echo "usage: launch.sh CHECKPOINT_DIR [--legacy] -- COMMAND..." >&2; exit 2; }}
ckpt="$1"; shift
args_dir="$here"
if [ "${{1:-}}" = "--legacy" ]; then args_dir="$here/legacy"; shift; fi
[ "${{1:-}}" = "--" ] && shift
[ "$#" -ge 1 ] || {{ echo "launch.sh: give the Megatron-LM command after --" >&2; exit 2; }}
iteration=0
tracker="$ckpt/latest_checkpointed_iteration.txt"
if [ -f "$tracker" ]; then iteration="$(tr -d '[:space:]' < "$tracker")"; fi
case "$iteration" in
  ''|*[!0-9]*) echo "launch.sh: $tracker holds '$iteration', not an iteration" >&2; exit 2;;
esac
starts=({starts})
ends=({ends})
phase=-1
for i in "${{!starts[@]}}"; do
  if [ "$iteration" -ge "${{starts[$i]}}" ] && [ "$iteration" -lt "${{ends[$i]}}" ]; then
    phase=$i
  fi
done
if [ "$phase" -lt 0 ]; then
  echo "launch.sh: checkpoint at iteration $iteration; training is complete ({target} steps)" >&2
  exit 0
fi
mapfile -t phase_args < "$args_dir/phase_$phase.args"
echo "launch.sh: iteration $iteration -> phase $phase" \
  "(steps ${{starts[$phase]}}-${{ends[$phase]}})" >&2
exec "$@" "${{phase_args[@]}}"
"""


def megatron(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[Files, list[str]]:
    batch = require_batch(options, "megatron", "sequences per step, for --global-batch-size and "
                          "the sample counts of sample-based training")
    samples = schedule.target_steps * batch
    transitions = ",".join(str(s.start_step) for s in schedule.stages[1:])
    files: Files = {}
    for i, stage in enumerate(schedule.stages):
        data_path = ["--data-path"]
        for domain, weight in nonzero_weights(schedule, stage):
            data_path += [number_text(weight), trainer_name(domain, prefixes)]
        # Identical in every phase except --data-path: Megatron-LM checks that the scheduler
        # settings of a resumed run match the checkpoint's.
        current = ["--global-batch-size", str(batch), "--train-samples", str(samples),
                   "--lr-decay-samples", str(samples)]
        if transitions:
            current += ["--phase-transition-iterations", transitions]
        legacy = ["--global-batch-size", str(batch), "--train-iters", str(stage.end_step),
                  "--lr-decay-iters", str(schedule.target_steps), "--override-opt_param-scheduler"]
        files[f"phase_{i}.args"] = "\n".join(current + data_path) + "\n"
        files[f"legacy/phase_{i}.args"] = "\n".join(legacy + data_path) + "\n"
    header = file_header(schedule, "megatron", [
        f"Units: --batch-size {batch} sequences per step; --train-samples and --lr-decay-samples "
        f"= {schedule.target_steps} steps x {batch} = {samples} samples.",
        "Phase i = stage i; phase_i.args: its arguments, one per line (zero weights left out).",
        "Sample-based training: give any warmup as --lr-warmup-samples or --lr-warmup-fraction.",
    ])
    files["launch.sh"] = _MEGATRON_LAUNCH.format(
        header="\n".join(header),
        starts=" ".join(str(s.start_step) for s in schedule.stages),
        ends=" ".join(str(s.end_step) for s in schedule.stages),
        target=schedule.target_steps,
    )
    return files, []

