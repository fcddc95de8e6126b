"""Atomic file and directory writes shared by every command (regmixd_cli/files.py)."""

from __future__ import annotations

import pytest

from regmixd_cli.errors import InputError
from regmixd_cli.files import atomic_write_bytes


def test_atomic_write_to_a_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"x")
