"""What every export shares: the formats, the options, the result, and small writers.

YAML is written by hand -- block style for structure, JSON flow style for leaves (JSON scalars,
lists and maps are valid YAML) -- so no YAML library is needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from regmixd_cli._version import __version__
from regmixd_cli.domain import Schedule, Stage
from regmixd_cli.errors import UsageError, param

EXPORT_FORMATS = (
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





Files = dict[str, str]
Writer = Callable[[Schedule, dict[str, str], ExportOptions], tuple[Files, list[str]]]


def require_option(value: int | None, option: str, fmt: str, why: str) -> int:
    if value is None:
        raise UsageError(f"{param('to')} {fmt} needs {param(option)} ({why})")
    if value < 1:
        raise UsageError(f"{param(option)} {value}: give a positive integer")
    return value


def require_batch(options: ExportOptions, fmt: str, why: str) -> int:
    return require_option(options.batch_size, "batch_size", fmt, why)


def require_sequence_length(options: ExportOptions, fmt: str, why: str) -> int:
    return require_option(options.sequence_length, "sequence_length", fmt, why)


def require_tokens(options: ExportOptions, fmt: str, why: str) -> tuple[int, int]:
    """(--batch-size, --sequence-length) for a format that counts tokens."""
    return require_batch(options, fmt, why), require_sequence_length(options, fmt, why)


def trainer_name(domain: str, prefixes: Mapping[str, str]) -> str:
    return prefixes.get(domain, domain)


def nonzero_weights(schedule: Schedule, stage: Stage) -> list[tuple[str, float]]:
    """(domain, weight) pairs with weight > 0: most trainers reject sources with nothing to draw."""
    return [(d, w) for d, w in zip(schedule.domains, stage.weights, strict=True) if w > 0]


def file_header(schedule: Schedule, fmt: str, lines: list[str], mark: str = "#") -> list[str]:
    head = [
        f"regmixd {__version__} export --to {fmt}; follows {SOURCES[fmt]}.",
        f"Schedule: {schedule.method}, {len(schedule.stages)} stage(s) over "
        f"{schedule.target_steps} optimizer steps; stages are half-open [start, end).",
        *lines,
    ]
    return [f"{mark} {line}".rstrip() for line in head]


def quote(text: str) -> str:
    """A string as a YAML scalar: JSON's double-quoted form is valid YAML and safe for any text."""
    return json.dumps(text, ensure_ascii=False)


def number_text(weight: float) -> str:
    """A weight in plain decimal notation: YAML 1.1 loaders (PyYAML) read `1e-06` as a string."""
    text = f"{weight:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def flow_list(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


def flow_map(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{quote(k)}: {v}" for k, v in pairs) + "}"


def manifest_text(schedule: Schedule, fmt: str, files: list[str], options: ExportOptions) -> str:
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

