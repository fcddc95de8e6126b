"""OLMo-core SourceMixtureDatasetConfig: one launch per stage."""

from __future__ import annotations

import math

from regmixd_cli.domain import Schedule, Stage
from regmixd_cli.plan.export.common import (
    ExportOptions,
    Files,
    file_header,
    nonzero_weights,
    number_text,
    quote,
    require_tokens,
    trainer_name,
)


def olmo_core(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[Files, list[str]]:
    why = "OLMo-core's global_batch_size and requested_tokens are in tokens"
    batch, seq = require_tokens(options, "olmo-core", why)
    tokens_per_step = batch * seq
    files: Files = {}
    for i, stage in enumerate(schedule.stages):
        lines = file_header(schedule, "olmo-core", [
            f"Launch {i} of {len(schedule.stages)}: steps {stage.start_step}-{stage.end_step}.",
            f"Units: global_batch_size = --batch-size {batch} x --sequence-length {seq} = "
            f"{tokens_per_step} tokens per step.",
            "source_mixture_config -> NumpyFSLDatasetConfig(source_mixture_config=...).",
            "The data loader resumes at batch start_step of the rebuilt dataset, so",
            f"requested_tokens covers steps 0..end_step: {stage.end_step} x {tokens_per_step}.",
            "data_loader: NumpyDataLoaderConfig fields (ignore_fingerprint_mismatch: a changed",
            "mixture changes the dataset fingerprint stored in the checkpoint).",
            "Train to max_duration (steps), load the previous launch's checkpoint, keep your",
            "LR schedule's length at the whole run (target_steps). Zero weights are left out.",
        ])
        lines += [
            f"start_step: {stage.start_step}",
            f"end_step: {stage.end_step}",
            f"target_steps: {schedule.target_steps}",
            f"max_duration: {{\"value\": {stage.end_step}, \"unit\": \"steps\"}}",
            "data_loader:",
            f"  global_batch_size: {tokens_per_step}",
            "  ignore_fingerprint_mismatch: true",
            "source_mixture_config:",
            f"  requested_tokens: {stage.end_step * tokens_per_step}",
            f"  global_batch_size: {tokens_per_step}",
            "  source_list:",
            "    sources:",
        ]
        for domain, weight in nonzero_weights(schedule, stage):
            lines += [
                f"    - source_name: {quote(domain)}",
                f"      target_ratio: {number_text(weight)}",
                f"      paths: [{quote(trainer_name(domain, prefixes))}]",
            ]
        files[f"stage_{i}.yaml"] = "\n".join(lines) + "\n"
    return files, []


# --- OLMo-core composable curriculum: one mix per stage, consumed in order ------------------

_OLMO_CURRICULUM = '''\
{header}
"""OLMo-core composable curriculum: one MixingInstanceSource per stage, trained in order.

    from olmo_core.data.composable import ConcatAndChunkInstanceSource, NumpyDocumentSource
    import regmixd_curriculum as cur

    def make_instance_source(domain: str, path: str):
        return ConcatAndChunkInstanceSource.Config(
            sources=[NumpyDocumentSource.Config(source_paths=[path], tokenizer=tokenizer)],
            sequence_length=cur.SEQUENCE_LENGTH,
        )

    loader = cur.build_data_loader(make_instance_source, tokenizer, work_dir="/tmp/dl")

Each stage's mix holds exactly (end - start) x BATCH_SIZE instances, and the data loader's
intra_source shuffle consumes the mixes in order, so the mixture switches at every stage's
start step inside one run; checkpoints resume it like any ComposableDataLoader. Each domain's
instances are split at random into disjoint parts, one per stage that uses it, so no stage
repeats another's data. Keep the trainer's max_duration at TARGET_STEPS steps.
OLMo-core rounds each source's share of a mix down to whole instances, so a stage may hold up
to one sequence per source fewer than asked: the switch can come that many sequences early.
"""

from olmo_core.data.composable import ComposableDataLoader, MixingInstanceSource, ShuffleStrategy

TARGET_STEPS = {target}
BATCH_SIZE = {batch}  # sequences (instances) per optimizer step
SEQUENCE_LENGTH = {seq}  # tokens per sequence
GLOBAL_BATCH_SIZE_TOKENS = BATCH_SIZE * SEQUENCE_LENGTH
PATHS = {paths}
# (start_step, end_step, {{domain: weight}}); weights under one sequence per stage left out
# (OLMo-core normalises the rest).
STAGES = [
{stages}
]


def stage_parts(make_instance_source, seed=0):
    """{{domain: [instance source config per stage using it]}}, disjoint random splits."""
    parts = {{}}
    for domain, path in PATHS.items():
        uses = [(end - start) * w[domain] for start, end, w in STAGES if domain in w]
        rest, left, pieces = make_instance_source(domain, path), sum(uses), []
        for use in uses[:-1]:
            first, rest = rest.random_split(use / left, seed=seed)
            pieces.append(first)
            left -= use
        parts[domain] = pieces + [rest] if uses else []
    return parts


def build_mixes(make_instance_source, seed=0):
    """One MixingInstanceSource.Config per stage, sized in instances (sequences)."""
    parts = stage_parts(make_instance_source, seed)
    taken = {{domain: 0 for domain in PATHS}}
    mixes = []
    for i, (start, end, weights) in enumerate(STAGES):
        specs = []
        for domain, weight in weights.items():
            specs.append(MixingInstanceSource.Spec.Config(
                source=parts[domain][taken[domain]], ratio=weight, label=domain))
            taken[domain] += 1
        mixes.append(MixingInstanceSource.Config(
            source_specs=specs, num_instances=(end - start) * BATCH_SIZE, seed=seed + i,
            label=f"regmixd stage {{i}}"))
    return mixes


def build_data_loader(make_instance_source, tokenizer, work_dir, seed=0, **loader_kwargs):
    """The ComposableDataLoader that plays the stages in order."""
    sources = [mix.build(work_dir) for mix in build_mixes(make_instance_source, seed)]
    return ComposableDataLoader.Config(
        tokenizer=tokenizer,
        global_batch_size=GLOBAL_BATCH_SIZE_TOKENS,
        shuffle_strategy=ShuffleStrategy.intra_source,
        seed=seed,
        **loader_kwargs,
    ).build(*sources, work_dir=work_dir)
'''


def olmo_core_curriculum(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[Files, list[str]]:
    why = "stage sizes are in instances and OLMo-core's global_batch_size in tokens"
    batch, seq = require_tokens(options, "olmo-core-curriculum", why)
    # OLMo-core samples each source in whole instances and refuses a source given none, so a
    # weight worth less than one sequence in its stage is left out (and said so).
    notes: list[str] = []
    kept: list[tuple[Stage, list[tuple[str, float]]]] = []
    for i, stage in enumerate(schedule.stages):
        size = (stage.end_step - stage.start_step) * batch
        pairs = [(d, w) for d, w in nonzero_weights(schedule, stage) if w * size >= 1]
        for d, w in nonzero_weights(schedule, stage):
            if w * size < 1:
                notes.append(f"olmo-core-curriculum: stage {i} leaves out {d} (weight "
                             f"{number_text(w)} "
                             f"is {w * size:.4g} of {size} sequences; OLMo-core mixes whole "
                             "sequences and refuses a source given none)")
        total = math.fsum(w for _, w in pairs)  # OLMo-core does not renormalise a lone 0.999999
        kept.append((stage, [(d, w / total) for d, w in pairs]))
    used = [d for d in schedule.domains if any(d in dict(p) for _, p in kept)]
    paths = "{" + ", ".join(f"{quote(d)}: {quote(trainer_name(d, prefixes))}" for d in used) + "}"
    stages = "\n".join(
        f"    ({s.start_step}, {s.end_step}, "
        + "{" + ", ".join(f"{quote(d)}: {number_text(w)}" for d, w in pairs) + "}),"
        for s, pairs in kept
    )
    text = _OLMO_CURRICULUM.format(
        header="\n".join(file_header(schedule, "olmo-core-curriculum", [
            f"Units: --batch-size {batch} sequences per step, --sequence-length {seq} tokens.",
        ])),
        target=schedule.target_steps, batch=batch, seq=seq, paths=paths, stages=stages,
    )
    return {"regmixd_curriculum.py": text}, notes

