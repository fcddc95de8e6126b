"""Exports parsed by the trainers' own config code, where it installs from PyPI without a GPU.

Each test is skipped (with the reason) when its package is missing. Versions checked:
draccus 0.11.6, datasets 5.2.0, ai2-olmo-core 3.0.0 with torch 2.13.0 (CPU). Levanter itself
needs JAX, so its mixture field is decoded by draccus into a dataclass with Levanter's type.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from tests.plan.test_export import UNITS, schedule_doc


# The fields regmixd writes, typed as in levanter/data/text.py LMMixtureDatasetConfig (module
# level: draccus resolves the string annotations against this module's globals).
@dataclasses.dataclass
class LevanterMixture:
    train_weights: dict[str, float] | list[tuple[int, dict[str, float]]] = dataclasses.field(
        default_factory=dict)
    mixture_block_size: int = 2048


@dataclasses.dataclass
class LevanterTrainer:
    train_batch_size: int = 512
    num_train_steps: int = 1


@dataclasses.dataclass
class LevanterTop:
    trainer: LevanterTrainer = dataclasses.field(default_factory=LevanterTrainer)
    data: LevanterMixture = dataclasses.field(default_factory=LevanterMixture)


@pytest.fixture
def schedule(tmp_path) -> Path:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(schedule_doc()), encoding="utf-8")
    return path


def test_levanter_train_weights_decode_with_draccus(cli, schedule, tmp_path):
    draccus = pytest.importorskip("draccus", reason="draccus (Levanter's config parser) missing")

    out = tmp_path / "levanter.yaml"
    result = cli("export", schedule, "--to", "levanter", "--batch-size", "256", "--out", out)
    assert result.exit_code == 0, result.output
    config = draccus.parse(LevanterTop, config_path=str(out), args=[])
    stages = config.data.train_weights
    assert [step for step, _ in stages] == [0, 4168, 12504]
    assert stages[1][1] == {"pile_cc": 0.6, "github": 0.4, "arxiv": 0.0}
    # mixture.py's condition: every later stage's sequence index is a multiple of the block.
    assert all(step * config.trainer.train_batch_size % config.data.mixture_block_size == 0
               for step, _ in stages)


def test_hf_recipe_runs_with_datasets(cli, schedule, tmp_path):
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets missing")
    result = cli("export", schedule, "--to", "hf", "--batch-size", "1")
    doc = json.loads(result.stdout)
    # Shrink to a toy run: the stage lengths in samples, divided by 10.
    sizes = [s["samples"] // 10 for s in doc["stages"]]
    source = {d: datasets.Dataset.from_dict({"text": [f"{d}-{i}" for i in range(2000)]})
              for d in doc["domains"]}
    parts = []
    for stage, n in zip(doc["stages"], sizes, strict=True):
        mixed = datasets.interleave_datasets(
            [source[name].to_iterable_dataset() for name in stage["datasets"]],
            probabilities=stage["probabilities"], seed=0, stopping_strategy="all_exhausted")
        parts.append(mixed.take(n))
    run = [row["text"] for row in datasets.concatenate_datasets(parts)]
    assert len(run) == sum(sizes)
    stage0, stage1 = run[: sizes[0]], run[sizes[0]: sizes[0] + sizes[1]]
    assert any(t.startswith("arxiv") for t in stage0)
    assert not any(t.startswith("arxiv") for t in stage1)  # dropped at weight 0
    share = sum(t.startswith("pile_cc") for t in stage1) / len(stage1)
    assert share == pytest.approx(0.6, abs=0.05)


def _olmo_core():
    if importlib.util.find_spec("olmo_core") is None:
        pytest.skip("ai2-olmo-core (and torch) missing")


def test_olmo_core_stage_configs_load_in_olmo_core(cli, schedule, tmp_path):
    _olmo_core()
    yaml = pytest.importorskip("yaml")
    from olmo_core.data.data_loader import NumpyDataLoaderConfig
    from olmo_core.data.source_mixture import SourceMixtureDatasetConfig

    out = tmp_path / "olmo"
    assert cli("export", schedule, "--to", "olmo-core", *UNITS, "--out", out).exit_code == 0
    for i in range(3):
        doc = yaml.safe_load((out / f"stage_{i}.yaml").read_text())
        mix = SourceMixtureDatasetConfig.from_dict(doc["source_mixture_config"])
        mix.validate()
        assert mix.global_batch_size == 512 * 4096
        loader = NumpyDataLoaderConfig(seed=0, **doc["data_loader"])
        assert loader.ignore_fingerprint_mismatch


def test_olmo_core_curriculum_module_builds_mixes(cli, schedule, tmp_path, monkeypatch):
    _olmo_core()
    from olmo_core.data.composable import (
        ConcatAndChunkInstanceSource,
        InMemoryTokenSource,
        TokenSourceConfig,
    )

    out = tmp_path / "regmixd_curriculum.py"
    result = cli("export", schedule, "--to", "olmo-core-curriculum", "--batch-size", "1",
                 "--sequence-length", "4", "--out", out)
    assert result.exit_code == 0, result.output
    monkeypatch.syspath_prepend(str(tmp_path))
    import regmixd_curriculum as cur

    @dataclasses.dataclass
    class Tokens(TokenSourceConfig):
        start: int = 0

        def build(self, work_dir):
            return [InMemoryTokenSource(list(range(self.start, self.start + 400_000)),
                                        work_dir=work_dir)]

    def make(domain: str, path: str):
        return ConcatAndChunkInstanceSource.Config(
            sources=[Tokens(start=1_000_000 * list(cur.PATHS).index(domain))], sequence_length=4)

    mixes = cur.build_mixes(make)
    assert [m.num_instances for m in mixes] == [4167, 8333, 12500]
    assert [[s.label for s in m.source_specs] for m in mixes] == [
        ["pile_cc", "github", "arxiv"], ["pile_cc", "github"], ["pile_cc"]]
    assert result.stderr.startswith("olmo-core-curriculum: stage 2 leaves out github")
    built = [m.build(str(tmp_path / "work")) for m in mixes]
    # OLMo-core 3.0.0 rounds each source's share down: at most one sequence per source short.
    for mix, source, want in zip(mixes, built, (4167, 8333, 12500), strict=True):
        assert want - len(mix.source_specs) < len(source) <= want
