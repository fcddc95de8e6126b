"""Schedules in trainers' own configuration formats (`regmixd export --to FORMAT`).

Units are explicit everywhere: a schedule's stages are half-open [start_step, end_step) in
optimizer steps; `batch_size` is sequences per step and `sequence_length` tokens per sequence,
so a stage holds (end - start) x batch_size samples and that times sequence_length tokens. An
export that needs one of them raises a UsageError naming the option.

Two kinds of trainer (docs/DECISIONS.md, "Exports"):
- switching natively inside one run: Levanter (`train_weights`), llm-foundry (the
  `curriculum_learning` callback), OLMo-core's composable API (one mix per stage, consumed in
  order), Hugging Face datasets (per-stage interleave, concatenated); one file;
- one launch per stage, each resuming the previous one's checkpoint: Megatron-LM, nanotron,
  OLMo-core's SourceMixtureDatasetConfig; a directory with one file per launch, a launch script,
  and MANIFEST (which marks the directory as regmixd's, so a later export may replace it).

Every file starts by saying what it is. YAML is written by hand -- block style for structure,
JSON flow style for leaves (JSON scalars, lists and maps are valid YAML) -- so no YAML library
is needed. `prefixes` maps a domain to the name or path the trainer knows it by; a domain without
one is named as itself. The trainer source each format follows is in SOURCES.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from regmixd_cli._version import __version__
from regmixd_cli.domain import Schedule, Stage
from regmixd_cli.errors import UsageError

FORMATS = (
    "megatron", "nanotron", "olmo-core", "levanter", "llm-foundry", "olmo-core-curriculum",
    "hf", "csv",
)  # fmt: skip
# Formats written as a directory of launch files (--out DIR); the rest are one file.
DIR_FORMATS = ("megatron", "nanotron", "olmo-core")
NATIVE_FORMATS = ("levanter", "llm-foundry", "olmo-core-curriculum", "hf")
HF_FORMAT = "regmixd.export.hf/v2"
MANIFEST = "regmixd-export.json"
MANIFEST_FORMAT = "regmixd.export/v1"
DEFAULT_MIXTURE_BLOCK_SIZE = 2048
# Where each format's field names and semantics come from (cited in headers and golden files).
SOURCES = {
    "megatron": "NVIDIA/Megatron-LM megatron/training/arguments.py, training.py, "
    "checkpointing.py @ d98e8a64ddf3",
    "nanotron": "huggingface/nanotron src/nanotron/config/config.py, run_train.py, "
    "src/nanotron/helpers.py @ 2411b022a75f",
    "olmo-core": "allenai/OLMo-core src/olmo_core/data/source_mixture.py, data_loader.py @ "
    "fa6c5014c9f6 (ai2-olmo-core 3.0.0)",
    "olmo-core-curriculum": "allenai/OLMo-core src/olmo_core/data/composable/ @ fa6c5014c9f6 "
    "(ai2-olmo-core 3.0.0)",
    "levanter": "stanford-crfm/levanter src/levanter/data/text.py (LMMixtureDatasetConfig), "
    "src/levanter/data/mixture.py @ 9263f81e8b45",
    "llm-foundry": "mosaicml/llm-foundry llmfoundry/callbacks/curriculum_learning_callback.py "
    "@ 8c8dd48f7216",
    "hf": "huggingface datasets 5.2.0 (interleave_datasets, concatenate_datasets)",
    "csv": "regmixd",
}


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """Numbers some trainers need that a schedule does not hold."""

    batch_size: int | None = None  # sequences per optimizer step
    sequence_length: int | None = None  # tokens per sequence
    mixture_block_size: int | None = None  # Levanter's data.mixture_block_size (sequences)


@dataclass(frozen=True, slots=True)
class Export:
    """What an export writes: one file (`directory` False) or named files of a directory."""

    fmt: str
    files: dict[str, str]
    directory: bool
    notes: tuple[str, ...] = field(default=())  # rounding reports, for stderr

    @property
    def text(self) -> str:
        """The single file's text (one-file formats only)."""
        return next(iter(self.files.values()))


def parse_prefixes(items: list[str] | None, domains: tuple[str, ...]) -> dict[str, str]:
    """`--prefix domain=path` options -> {domain: path}; unknown domains are a UsageError."""
    prefixes: dict[str, str] = {}
    for item in items or []:
        domain, sep, path = item.partition("=")
        if not sep or not domain or not path:
            raise UsageError(f"--prefix {item!r}: expected DOMAIN=PATH")
        if domain not in domains:
            raise UsageError(
                f"--prefix {item!r}: unknown domain {domain!r}; the schedule has "
                f"{', '.join(domains)}"
            )
        if "\n" in path or "\r" in path:  # launch files hold one argument per line
            raise UsageError(f"--prefix {item!r}: a path may not contain a line break")
        prefixes[domain] = path
    return prefixes


def build_export(
    schedule: Schedule,
    fmt: str,
    prefixes: Mapping[str, str] | None = None,
    options: ExportOptions | None = None,
) -> Export:
    """The schedule in trainer format `fmt` (one of FORMATS), with its rounding notes."""
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise UsageError(f"--to {fmt!r}: unknown format; choose one of {', '.join(FORMATS)}")
    files, notes = writer(schedule, dict(prefixes or {}), options or ExportOptions())
    if fmt in DIR_FORMATS:
        files[MANIFEST] = _manifest(schedule, fmt, sorted(files), options or ExportOptions())
    return Export(fmt, files, fmt in DIR_FORMATS, tuple(notes))


def export_schedule(
    schedule: Schedule,
    fmt: str,
    prefixes: Mapping[str, str] | None = None,
    options: ExportOptions | None = None,
) -> str:
    """The text of a one-file export; a directory format is a UsageError asking for --out DIR."""
    result = build_export(schedule, fmt, prefixes, options)
    if result.directory:
        raise UsageError(f"--to {fmt} writes one file per launch; give --out DIR")
    return result.text


def is_export_file(text: str) -> bool:
    """Whether a file's text is a one-file regmixd export (which a new export may replace)."""
    if text.startswith(("# regmixd ", "stage,start_step,end_step,")):
        return True
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, dict) and str(doc.get("format", "")).startswith("regmixd.export.")


def is_export_manifest(text: str) -> bool:
    """Whether MANIFEST text marks a directory written by `regmixd export`."""
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT


# --- shared pieces -------------------------------------------------------------------------


_Files = dict[str, str]
_Writer = Callable[[Schedule, dict[str, str], ExportOptions], tuple[_Files, list[str]]]


def _require(value: int | None, option: str, fmt: str, why: str) -> int:
    if value is None:
        raise UsageError(f"--to {fmt} needs {option} ({why})")
    if value < 1:
        raise UsageError(f"{option} {value}: give a positive integer")
    return value


def _batch(options: ExportOptions, fmt: str, why: str) -> int:
    return _require(options.batch_size, "--batch-size", fmt, why)


def _seq_len(options: ExportOptions, fmt: str, why: str) -> int:
    return _require(options.sequence_length, "--sequence-length", fmt, why)


def _name(domain: str, prefixes: Mapping[str, str]) -> str:
    return prefixes.get(domain, domain)


def _nonzero(schedule: Schedule, stage: Stage) -> list[tuple[str, float]]:
    """(domain, weight) pairs with weight > 0: most trainers reject sources with nothing to draw."""
    return [(d, w) for d, w in zip(schedule.domains, stage.weights, strict=True) if w > 0]


def _header(schedule: Schedule, fmt: str, lines: list[str], mark: str = "#") -> list[str]:
    head = [
        f"regmixd {__version__} export --to {fmt}; follows {SOURCES[fmt]}.",
        f"Schedule: {schedule.method}, {len(schedule.stages)} stage(s) over "
        f"{schedule.target_steps} optimizer steps; stages are half-open [start, end).",
        *lines,
    ]
    return [f"{mark} {line}".rstrip() for line in head]


def _q(text: str) -> str:
    """A string as a YAML scalar: JSON's double-quoted form is valid YAML and safe for any text."""
    return json.dumps(text, ensure_ascii=False)


def _num(weight: float) -> str:
    """A weight in plain decimal notation: YAML 1.1 loaders (PyYAML) read `1e-06` as a string."""
    text = f"{weight:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _flow_list(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _flow_map(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{_q(k)}: {v}" for k, v in pairs) + "}"


def _manifest(schedule: Schedule, fmt: str, files: list[str], options: ExportOptions) -> str:
    doc = {
        "format": MANIFEST_FORMAT,
        "to": fmt,
        "follows": SOURCES[fmt],
        "regmixd_version": __version__,
        "method": schedule.method,
        "target_steps": schedule.target_steps,
        "batch_size": options.batch_size,
        "sequence_length": options.sequence_length,
        "stages": [[s.start_step, s.end_step] for s in schedule.stages],
        "files": files,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --- Megatron-LM: one launch per phase -----------------------------------------------------

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


def _megatron(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[_Files, list[str]]:
    batch = _batch(options, "megatron", "sequences per step, for --global-batch-size and the "
                   "sample counts of sample-based training")
    samples = schedule.target_steps * batch
    transitions = ",".join(str(s.start_step) for s in schedule.stages[1:])
    files: _Files = {}
    for i, stage in enumerate(schedule.stages):
        data_path = ["--data-path"]
        for domain, weight in _nonzero(schedule, stage):
            data_path += [_num(weight), _name(domain, prefixes)]
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
    header = _header(schedule, "megatron", [
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


# --- nanotron: one launch per stage, cumulative data_stages --------------------------------

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


def _nanotron(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[_Files, list[str]]:
    del options  # nanotron's data_stages and train_steps are in optimizer steps already
    entries: list[list[str]] = []
    files: _Files = {}
    for i, stage in enumerate(schedule.stages):
        pairs = _nonzero(schedule, stage)
        name = f"regmixd stage {i}: steps {stage.start_step}-{stage.end_step - 1}"
        entries.append([
            f"- name: {_q(name)}",
            f"  start_training_step: {stage.start_step + 1}",
            "  data:",
            "    dataset:",
            f"      dataset_folder: {_flow_list([_q(_name(d, prefixes)) for d, _ in pairs])}",
            f"      dataset_weights: {_flow_list([_num(w) for _, w in pairs])}",
        ])
        lines = _header(schedule, "nanotron", [
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
        header="\n".join(_header(schedule, "nanotron", [])), target=schedule.target_steps
    )
    return files, []


# --- OLMo-core SourceMixtureDatasetConfig: one launch per stage ----------------------------


def _olmo_core(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[_Files, list[str]]:
    why = "OLMo-core's global_batch_size and requested_tokens are in tokens"
    batch = _batch(options, "olmo-core", why)
    seq = _seq_len(options, "olmo-core", why)
    tokens_per_step = batch * seq
    files: _Files = {}
    for i, stage in enumerate(schedule.stages):
        lines = _header(schedule, "olmo-core", [
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
        for domain, weight in _nonzero(schedule, stage):
            lines += [
                f"    - source_name: {_q(domain)}",
                f"      target_ratio: {_num(weight)}",
                f"      paths: [{_q(_name(domain, prefixes))}]",
            ]
        files[f"stage_{i}.yaml"] = "\n".join(lines) + "\n"
    return files, []


# --- Levanter: train_weights, switching inside one run --------------------------------------


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
                f"--to levanter: stage {i} (step {stage.start_step}) has no start step of its own "
                f"that is a multiple of {unit} steps (--mixture-block-size {block} sequences, "
                f"--batch-size {batch}); give a smaller --mixture-block-size"
            )
        if snapped != stage.start_step:
            notes.append(
                f"levanter: stage {i} starts at step {snapped}, not {stage.start_step} "
                f"({snapped - stage.start_step:+d} steps): Levanter needs step x --batch-size "
                f"{batch} to be a multiple of --mixture-block-size {block}"
            )
        starts.append(snapped)
    return starts, notes


def _levanter(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[_Files, list[str]]:
    batch = _batch(options, "levanter", "Levanter turns a stage's start step into the sequence "
                   "index step x batch size")
    block = options.mixture_block_size
    if block is None:
        block = DEFAULT_MIXTURE_BLOCK_SIZE
    if block < 1:
        raise UsageError(f"--mixture-block-size {block}: give a positive integer")
    starts, notes = levanter_starts(schedule, batch, block)
    lines = _header(schedule, "levanter", [
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
        weights = _flow_map([
            (_name(d, prefixes), _num(w))
            for d, w in zip(schedule.domains, stage.weights, strict=True)
        ])
        lines.append(f"  - [{start}, {weights}]")
    return {"levanter.yaml": "\n".join(lines) + "\n"}, notes


# --- llm-foundry: the curriculum_learning callback ------------------------------------------


def _stream(path: str, weight: float) -> str:
    # StreamingDataset reads `remote` (object store, URL) into `local`, or `local` alone.
    key = "remote" if "://" in path else "local"
    return _flow_map([(key, _q(path)), ("proportion", _num(weight))])


def _streams(schedule: Schedule, stage: Stage, prefixes: dict[str, str], indent: str) -> list[str]:
    lines = [f"{indent}streams:"]
    for domain, weight in _nonzero(schedule, stage):
        lines.append(f"{indent}  {_q(domain)}: {_stream(_name(domain, prefixes), weight)}")
    return lines


def _llm_foundry(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[_Files, list[str]]:
    why = "curriculum durations are in tokens (tok)"
    batch = _batch(options, "llm-foundry", why)
    seq = _seq_len(options, "llm-foundry", why)
    per_step = batch * seq
    lines = _header(schedule, "llm-foundry", [
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
        f"max_duration: {_q(f'{schedule.target_steps * per_step}tok')}",
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
            f"    duration: {_q(f'{duration}tok')}",
            "    schedule:",
        ]
        for stage in schedule.stages[1:]:
            duration = (stage.end_step - stage.start_step) * per_step
            lines += [
                f"    - duration: {_q(f'{duration}tok')}",
                "      dataset:",
                *_streams(schedule, stage, prefixes, "        "),
            ]
    return {"llm-foundry.yaml": "\n".join(lines) + "\n"}, []


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


def _olmo_core_curriculum(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[_Files, list[str]]:
    why = "stage sizes are in instances and OLMo-core's global_batch_size in tokens"
    batch = _batch(options, "olmo-core-curriculum", why)
    seq = _seq_len(options, "olmo-core-curriculum", why)
    # OLMo-core samples each source in whole instances and refuses a source given none, so a
    # weight worth less than one sequence in its stage is left out (and said so).
    notes: list[str] = []
    kept: list[tuple[Stage, list[tuple[str, float]]]] = []
    for i, stage in enumerate(schedule.stages):
        size = (stage.end_step - stage.start_step) * batch
        pairs = [(d, w) for d, w in _nonzero(schedule, stage) if w * size >= 1]
        for d, w in _nonzero(schedule, stage):
            if w * size < 1:
                notes.append(f"olmo-core-curriculum: stage {i} leaves out {d} (weight {_num(w)} "
                             f"is {w * size:.4g} of {size} sequences; OLMo-core mixes whole "
                             "sequences and refuses a source given none)")
        total = math.fsum(w for _, w in pairs)  # OLMo-core does not renormalise a lone 0.999999
        kept.append((stage, [(d, w / total) for d, w in pairs]))
    used = [d for d in schedule.domains if any(d in dict(p) for _, p in kept)]
    paths = "{" + ", ".join(f"{_q(d)}: {_q(_name(d, prefixes))}" for d in used) + "}"
    stages = "\n".join(
        f"    ({s.start_step}, {s.end_step}, "
        + "{" + ", ".join(f"{_q(d)}: {_num(w)}" for d, w in pairs) + "}),"
        for s, pairs in kept
    )
    text = _OLMO_CURRICULUM.format(
        header="\n".join(_header(schedule, "olmo-core-curriculum", [
            f"Units: --batch-size {batch} sequences per step, --sequence-length {seq} tokens.",
        ])),
        target=schedule.target_steps, batch=batch, seq=seq, paths=paths, stages=stages,
    )
    return {"regmixd_curriculum.py": text}, notes


# --- Hugging Face datasets: per-stage interleave, concatenated -----------------------------


def _hf(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[_Files, list[str]]:
    batch = _batch(options, "hf", "each stage's length is given in samples")
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
                "datasets": [_name(d, prefixes) for d, _ in _nonzero(schedule, s)],
                "probabilities": [w for _, w in _nonzero(schedule, s)],
            }
            for s in schedule.stages
        ],
    }
    return {"hf.json": json.dumps(doc, indent=2, ensure_ascii=False) + "\n"}, []


# --- CSV ---------------------------------------------------------------------------------


def _csv(
    schedule: Schedule, prefixes: dict[str, str], options: ExportOptions
) -> tuple[_Files, list[str]]:
    del options
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "stage",
            "start_step",
            "end_step",
            "start_fraction",
            "end_fraction",
            "predicted_loss",
            *(_name(d, prefixes) for d in schedule.domains),
        ]
    )
    for i, s in enumerate(schedule.stages):
        loss = "" if s.predicted_loss is None else repr(s.predicted_loss)
        writer.writerow(
            [
                i,
                s.start_step,
                s.end_step,
                s.start_fraction,
                s.end_fraction,
                loss,
                *(_num(w) for w in s.weights),
            ]
        )
    return {"schedule.csv": buffer.getvalue()}, []


_WRITERS: dict[str, _Writer] = {
    "megatron": _megatron,
    "nanotron": _nanotron,
    "olmo-core": _olmo_core,
    "levanter": _levanter,
    "llm-foundry": _llm_foundry,
    "olmo-core-curriculum": _olmo_core_curriculum,
    "hf": _hf,
    "csv": _csv,
}

__all__ = [
    "DIR_FORMATS", "FORMATS", "NATIVE_FORMATS", "Export", "ExportOptions", "build_export",
    "export_schedule", "is_export_file", "is_export_manifest", "levanter_starts", "parse_prefixes",
]  # fmt: skip
