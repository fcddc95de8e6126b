"""llm-foundry: the curriculum_learning callback."""

from __future__ import annotations

from regmixd_cli.domain import Schedule, Stage
from regmixd_cli.plan.export.common import (
    ExportOptions,
    Files,
    file_header,
    flow_map,
    nonzero_weights,
    number_text,
    quote,
    require_tokens,
    trainer_name,
)


def _stream(path: str, weight: float) -> str:
    # StreamingDataset reads `remote` (object store, URL) into `local`, or `local` alone.
    key = "remote" if "://" in path else "local"
    return flow_map([(key, quote(path)), ("proportion", number_text(weight))])


def _streams(schedule: Schedule, stage: Stage, prefixes: dict[str, str], indent: str) -> list[str]:
    lines = [f"{indent}streams:"]
    for domain, weight in nonzero_weights(schedule, stage):
        stream = _stream(trainer_name(domain, prefixes), weight)
        lines.append(f"{indent}  {quote(domain)}: {stream}")
    return lines


def llm_foundry(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[Files, list[str]]:
    why = "curriculum durations are in tokens (tok)"
    batch, seq = require_tokens(options, "llm-foundry", why)
    per_step = batch * seq
    lines = file_header(schedule, "llm-foundry", [
        "Switches mixture inside one run: merge into your train YAML (train_loader must be a",
        "StreamingDataset, `name: text`; keep your other dataset keys). Units: 1 step =",
        f"--batch-size {batch} x --sequence-length {seq} = {per_step} tokens (tok); global",
        f"train batch size {batch}, max_seq_len {seq}, no padding (concat_tokens data).",
        "callbacks.curriculum_learning.duration is stage 0; schedule lists stages 1..; the",
        "durations sum to max_duration. Resume with load_path as usual: the callback checks",
        "that finished stages are unchanged. Zero weights are left out.",
    ])
    first = schedule.stages[0]
    lines += [
        f"max_duration: {quote(f'{schedule.target_steps * per_step}tok')}",
        f"global_train_batch_size: {batch}",
        f"max_seq_len: {seq}",
        "train_loader:",
        "  name: text",
        "  dataset:",
        f"    max_seq_len: {seq}",
        *_streams(schedule, first, prefixes, "    "),
    ]
    if len(schedule.stages) > 1:  # the callback refuses an empty schedule
        duration = (first.end_step - first.start_step) * per_step
        lines += [
            "callbacks:",
            "  curriculum_learning:",
            f"    duration: {quote(f'{duration}tok')}",
            "    schedule:",
        ]
        for stage in schedule.stages[1:]:
            duration = (stage.end_step - stage.start_step) * per_step
            lines += [
                f"    - duration: {quote(f'{duration}tok')}",
                "      dataset:",
                *_streams(schedule, stage, prefixes, "        "),
            ]
    return {"llm-foundry.yaml": "\n".join(lines) + "\n"}, []

