"""Regenerate docs/reference/commands.md's help blocks from the installed `regmixd --help`.

The page's introduction (everything before the first `## `) is kept; every command section is
rewritten as `regmixd COMMAND --help` prints it at 80 columns. Run after changing an option:

    python bench/gen_commands_doc.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "commands.md"
COMMANDS = (
    "run", "ingest", "fit", "evaluate", "schedule", "predict", "compare", "online", "export",
    "show", "design", "simulate", "simulate score", "simulate oracle",
)  # fmt: skip


def help_text(command: str) -> str:
    """`regmixd COMMAND --help` at 80 columns, without colour."""
    env = os.environ | {"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run(
        [sys.executable, "-m", "regmixd_cli", *command.split(), "--help"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return result.stdout.rstrip() + "\n"


def main() -> None:
    """Rewrite the page in place."""
    text = PAGE.read_text(encoding="utf-8")
    intro = text[: text.index("\n## ") + 1]
    sections = [f"## `regmixd {c}`\n\n```text\n{help_text(c)}```\n" for c in COMMANDS]
    version = "## `regmixd --version`\n\nPrints `regmixd X.Y.Z` and exits 0.\n"
    PAGE.write_text(intro + "\n".join([*sections, version]), encoding="utf-8")


if __name__ == "__main__":
    main()
