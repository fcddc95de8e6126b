"""File primitives shared by every reader and writer: atomic writes, hashing, JSON.

Every output regmixd writes goes through `atomic_write_*` or `atomic_dir`, so a command that
fails or is killed leaves what the user had exactly as it was (SPEC section 5).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regmixd_cli.errors import InputError


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dumps_json(data: Any) -> str:
    """Canonical JSON text: sorted keys, two-space indent, trailing newline (byte-stable)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's files are 0600; outputs follow the umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write canonical JSON atomically."""
    atomic_write_text(path, dumps_json(data))


def read_json(path: Path, what: str = "JSON file") -> Any:
    """Read a JSON file, turning every failure into one InputError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.__class__.__name__})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: malformed {what}: {exc.msg}") from None


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `path` only if the block succeeds.

    The directory is built next to `path` (same filesystem, so the final rename is atomic).
    An existing `path` is moved aside, the new one renamed in, and the old one deleted; if
    anything fails before the swap, `path` is untouched and the temporary directory removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    # mkdtemp makes a private (0700) directory; outputs get the usual umask-based mode.
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    if path.exists():
        if not path.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            raise InputError(f"{path}: exists and is not a directory; choose another --out")
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.rename(path, old / "previous")
    try:
        os.rename(tmp, path)
    except BaseException:
        if old is not None:
            os.rename(old / "previous", path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
