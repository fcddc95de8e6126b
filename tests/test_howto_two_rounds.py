"""docs/how-to/two-rounds.md is walkable: its commands run as written, in order, and the plan
they end with beats static RegMix in the world they simulate (as the page says)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "two-rounds.md"


def _commands() -> list[list[str]]:
    block = re.search(r"```console\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None, "the how-to lost its console block"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    return [shlex.split(line) for line in lines if line]


@pytest.mark.slow
def test_the_two_round_recipe_runs_as_written(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = _commands()
    assert len(commands) == 10 and all(c[0] == "regmixd" for c in commands)
    for command in commands:
        result = cli(*command[1:])
        assert result.exit_code == 0, (command, result.output)
    plan = json.loads(Path("plan.json").read_text())
    guard = plan["provenance"]["guard"]
    assert "verification runs" in guard["reason"] and "best measured run" in guard["reason"]
    static = cli("schedule", "m2", "--static", "--out", "static.json")
    assert static.exit_code == 0, static.output
    scores = []
    for name in ("plan.json", "static.json"):
        result = cli("simulate", "score", "world/world.json", name, "--json")
        assert result.exit_code == 0, result.output
        scores.append(json.loads(result.stdout)["final_loss"])
    assert scores[0] < scores[1], scores  # the page's claim: 4.8503 against 4.8753
