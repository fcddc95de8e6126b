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
one is named as itself. The trainer source each format follows is in `common.SOURCES`.
One module per trainer; `common` holds what they share.
"""

from __future__ import annotations

from collections.abc import Mapping

from regmixd_cli.domain import Schedule
from regmixd_cli.errors import UsageError, param
from regmixd_cli.plan.export.common import (
    DIR_FORMATS,
    EXPORT_FORMATS,
    MANIFEST,
    NATIVE_FORMATS,
    Export,
    ExportOptions,
    Writer,
    manifest_text,
)
from regmixd_cli.plan.export.csv import csv_export
from regmixd_cli.plan.export.hf import hf
from regmixd_cli.plan.export.levanter import levanter, levanter_starts
from regmixd_cli.plan.export.llm_foundry import llm_foundry
from regmixd_cli.plan.export.megatron import megatron
from regmixd_cli.plan.export.nanotron import nanotron
from regmixd_cli.plan.export.olmo_core import olmo_core, olmo_core_curriculum


def parse_prefixes(items: list[str] | None, domains: tuple[str, ...]) -> dict[str, str]:
    """`--prefix domain=path` options -> {domain: path}; unknown domains are a UsageError."""
    prefixes: dict[str, str] = {}
    for item in items or []:
        domain, sep, path = item.partition("=")
        if not sep or not domain or not path:
            raise UsageError(f"{param('prefix')} {item!r}: expected DOMAIN=PATH")
        if domain not in domains:
            raise UsageError(
                f"{param('prefix')} {item!r}: unknown domain {domain!r}; the schedule has "
                f"{', '.join(domains)}"
            )
        if "\n" in path or "\r" in path:  # launch files hold one argument per line
            raise UsageError(f"{param('prefix')} {item!r}: a path may not contain a line break")
        prefixes[domain] = path
    return prefixes


def build_export(
    schedule: Schedule,
    fmt: str,
    prefixes: Mapping[str, str] | None = None,
    options: ExportOptions | None = None,
) -> Export:
    """The schedule in trainer format `fmt` (one of EXPORT_FORMATS), with its rounding notes."""
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise UsageError(
            f"{param('to')} {fmt!r}: unknown format; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    files, notes = writer(schedule, dict(prefixes or {}), options or ExportOptions())
    if fmt in DIR_FORMATS:
        files[MANIFEST] = manifest_text(schedule, fmt, sorted(files), options or ExportOptions())
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
        raise UsageError(f"{param('to')} {fmt} writes one file per launch; give {param('out')} DIR")
    return result.text


_WRITERS: dict[str, Writer] = {
    "megatron": megatron,
    "nanotron": nanotron,
    "olmo-core": olmo_core,
    "levanter": levanter,
    "llm-foundry": llm_foundry,
    "olmo-core-curriculum": olmo_core_curriculum,
    "hf": hf,
    "csv": csv_export,
}

__all__ = [
    "DIR_FORMATS", "EXPORT_FORMATS", "MANIFEST", "NATIVE_FORMATS", "Export", "ExportOptions",
    "build_export", "export_schedule", "levanter_starts", "parse_prefixes",
]  # fmt: skip
