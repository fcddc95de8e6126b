"""Schedules in trainers' own configuration formats (`regmixd export --to FORMAT`, docs/reference/file-formats.md).

Every export starts by saying what it is (a comment header, or a `format` key in JSON) and keeps
the schedule's half-open stages [start_step, end_step). YAML is written by hand -- block style for
structure, JSON flow style for leaves (JSON scalars, lists and maps are valid YAML) -- so no YAML
library is needed. `prefixes` maps a domain to the name or path the trainer knows it by (Megatron
data prefix, nanotron dataset folder, OLMo-core path, HF dataset, Levanter source name); a domain
without one is named as itself.

Trainers that cannot change the mixture within one launch (Megatron-LM, OLMo-core) get one blend
per stage, to be run as successive launches that resume from the previous stage's checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections.abc import Callable, Mapping

from regmixd_cli._version import __version__
from regmixd_cli.domain import Schedule, Stage
from regmixd_cli.errors import UsageError

FORMATS = ("megatron", "nanotron", "hf", "olmo-core", "levanter", "csv")
HF_FORMAT = "regmixd.export.hf/v1"


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
        prefixes[domain] = path
    return prefixes


def export_schedule(schedule: Schedule, fmt: str, prefixes: Mapping[str, str] | None = None) -> str:
    """The schedule as text in trainer format `fmt` (one of FORMATS)."""
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise UsageError(f"--to {fmt!r}: unknown format; choose one of {', '.join(FORMATS)}")
    return writer(schedule, dict(prefixes or {}))


def _name(domain: str, prefixes: Mapping[str, str]) -> str:
    return prefixes.get(domain, domain)


def _nonzero(schedule: Schedule, stage: Stage) -> list[tuple[str, float]]:
    """(domain, weight) pairs with weight > 0: Megatron, nanotron and OLMo-core reject or waste
    sources with nothing to sample."""
    return [(d, w) for d, w in zip(schedule.domains, stage.weights, strict=True) if w > 0]


def _header(schedule: Schedule, trainer: str, lines: list[str]) -> list[str]:
    head = [
        f"regmixd {__version__} export for {trainer}.",
        f"Schedule: {schedule.method}, {len(schedule.stages)} stage(s) over "
        f"{schedule.target_steps} target steps; stages are half-open [start, end) in steps.",
        *lines,
    ]
    return [f"# {line}" for line in head]


def _q(text: str) -> str:
    """A string as a YAML scalar: JSON's double-quoted form is valid YAML and safe for any text."""
    return json.dumps(text, ensure_ascii=False)


def _num(weight: float) -> str:
    """A weight in plain decimal notation: YAML 1.1 loaders (PyYAML) read `1e-06` as a string."""
    text = f"{weight:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _flow_list(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _megatron(schedule: Schedule, prefixes: dict[str, str]) -> str:
    lines = _header(
        schedule,
        "Megatron-LM (--data-path weight/prefix pairs, one per stage)",
        [
            "Megatron-LM keeps one blend per launch: run stage i as its own launch, resuming from",
            "the previous stage's checkpoint, with --train-iters $STAGE_i_END and",
            '--data-path "${STAGE_i_DATA_PATH[@]}" (a bash array: prefixes may contain spaces).',
            "Source this file in bash. Zero weights are left out.",
        ],
    )
    lines.append(f"N_STAGES={len(schedule.stages)}")
    for i, stage in enumerate(schedule.stages):
        pairs = " ".join(
            f"{_num(w)} {shlex.quote(_name(d, prefixes))}" for d, w in _nonzero(schedule, stage)
        )
        lines.append(f"STAGE_{i}_START={stage.start_step}")
        lines.append(f"STAGE_{i}_END={stage.end_step}")
        lines.append(f"STAGE_{i}_DATA_PATH=({pairs})")
    return "\n".join(lines) + "\n"


def _nanotron(schedule: Schedule, prefixes: dict[str, str]) -> str:
    lines = _header(
        schedule,
        "nanotron (data_stages with Nanoset dataset_folder/dataset_weights)",
        [
            "Replace the data_stages of your nanotron config with this list. nanotron counts",
            "training steps from 1, so start_training_step = start_step + 1. Add seed and",
            "num_loading_workers under `data` as your config needs. Zero weights are left out.",
        ],
    )
    lines.append("data_stages:")
    for i, stage in enumerate(schedule.stages):
        pairs = _nonzero(schedule, stage)
        folders = [_name(d, prefixes) for d, _ in pairs]
        name = f"regmixd stage {i}: steps {stage.start_step}-{stage.end_step - 1}"
        lines += [
            f"- name: {_q(name)}",
            f"  start_training_step: {stage.start_step + 1}",
            "  data:",
            "    dataset:",
            f"      dataset_folder: {_flow_list([_q(f) for f in folders])}",
            f"      dataset_weights: {_flow_list([_num(w) for _, w in pairs])}",
        ]
    return "\n".join(lines) + "\n"


def _olmo_core(schedule: Schedule, prefixes: dict[str, str]) -> str:
    lines = _header(
        schedule,
        "OLMo-core (olmo_core.data.source_mixture SourceMixtureList per stage)",
        [
            "OLMo-core fixes the source mixture per launch: run stage i as its own launch,",
            "resuming from the previous stage's checkpoint, with SourceMixtureDatasetConfig(",
            "source_list=<stage i source_list>,",
            "requested_tokens=(end_step - start_step) x tokens per step).",
            "`paths` are the --prefix paths or globs (default: the domain name). Zero weights are",
            "left out.",
        ],
    )
    lines.append("stages:")
    for stage in schedule.stages:
        lines += [
            f"- start_step: {stage.start_step}",
            f"  end_step: {stage.end_step}",
            "  source_list:",
            "    sources:",
        ]
        for domain, weight in _nonzero(schedule, stage):
            lines += [
                f"    - source_name: {_q(domain)}",
                f"      target_ratio: {_num(weight)}",
                f"      paths: [{_q(_name(domain, prefixes))}]",
            ]
    return "\n".join(lines) + "\n"


def _levanter(schedule: Schedule, prefixes: dict[str, str]) -> str:
    lines = _header(
        schedule,
        "Levanter (data.train_weights as [step, {source: weight}] stage starts)",
        [
            "Merge into your Levanter config: each entry switches the mixture at that training",
            "step (Levanter rescales steps for batch-size schedules). The names must be keys of",
            "data.configs (or data.components); --prefix DOMAIN=NAME renames them.",
        ],
    )
    lines += ["data:", "  train_weights:"]
    for stage in schedule.stages:
        weights = ", ".join(
            f"{_q(_name(d, prefixes))}: {_num(w)}"
            for d, w in zip(schedule.domains, stage.weights, strict=True)
        )
        lines.append(f"  - [{stage.start_step}, {{{weights}}}]")
    return "\n".join(lines) + "\n"


def _hf(schedule: Schedule, prefixes: dict[str, str]) -> str:
    doc = {
        "format": HF_FORMAT,
        "description": (
            "Hugging Face datasets.interleave_datasets probabilities per stage: for each stage, "
            "interleave_datasets([ds[name] for name in datasets], probabilities=stage"
            "['probabilities']) and train on it from start_step to end_step (half-open)."
        ),
        "regmixd_version": __version__,
        "method": schedule.method,
        "target_steps": schedule.target_steps,
        "domains": list(schedule.domains),
        "datasets": [_name(d, prefixes) for d in schedule.domains],
        "stages": [
            {
                "start_step": s.start_step,
                "end_step": s.end_step,
                "probabilities": list(s.weights),
            }
            for s in schedule.stages
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _csv(schedule: Schedule, prefixes: dict[str, str]) -> str:
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
    return buffer.getvalue()


_WRITERS: dict[str, Callable[[Schedule, dict[str, str]], str]] = {
    "megatron": _megatron,
    "nanotron": _nanotron,
    "hf": _hf,
    "olmo-core": _olmo_core,
    "levanter": _levanter,
    "csv": _csv,
}
