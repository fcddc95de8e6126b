"""File primitives shared by every reader and writer: atomic writes, hashing, JSON.

Every output regmixd writes goes through `atomic_write_*` or `atomic_dir`, so a command that
fails or is killed leaves what the user had exactly as it was (docs/reference/exit-codes.md).

Temporary paths are hidden siblings of the output, named `.NAME.<pid>.<random>.tmp` (`.old`
for a directory being swapped out). A process killed with SIGKILL cannot clean up, so the next
write to the same output removes the leftovers of processes that are no longer alive (and puts
back a directory that was caught between its two renames); leftovers of live processes are
left alone. Readers never look at hidden paths, so leftovers are harmless meanwhile.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from regmixd_cli.errors import InputError, UsageError


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


# Longest output name kept whole in a temporary name; a longer one (a legal 250-character
# name would make `.NAME.<pid>.<random>.tmp` exceed the 255-byte limit) is cut and hashed.
_TMP_NAME_MAX = 120


def temp_stem(path: Path) -> str:
    """`path`'s name as it appears in its hidden siblings' names (temporaries, locks): the
    name itself, or, past _TMP_NAME_MAX bytes, its start and a hash (short and unique)."""
    name = path.name
    if len(os.fsencode(name)) <= _TMP_NAME_MAX:
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    return f"{name[:40]}~{digest}"


def _tmp_prefix(path: Path) -> str:
    """Prefix of `path`'s temporary siblings; the pid tells whether their writer is alive."""
    return f".{temp_stem(path)}.{os.getpid()}."


def output_path(path: Path) -> Path:
    """`path` made absolute and normalised (so `.` and `..` have a name and a parent)."""
    return Path(os.path.abspath(path))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: a process of another user holds that pid
        return True
    return True


def clean_stale_temps(path: Path) -> list[Path]:
    """Remove temporary siblings of `path` left by dead processes; return what was removed.

    A directory killed between the two renames of the fallback swap in `atomic_dir` is put
    back at `path` first, so a SIGKILL never loses the previous output.
    """
    path = Path(path)
    prefix = f".{temp_stem(path)}."
    removed: list[Path] = []
    try:
        siblings = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for sibling in siblings:
        rest = sibling.name[len(prefix):].split(".")
        if len(rest) != 3 or rest[2] not in ("tmp", "old") or not rest[0].isdigit():
            continue  # not one of ours (or a name from an older version): leave it
        if _alive(int(rest[0])):
            continue
        previous = sibling / "previous"
        with contextlib.suppress(OSError):
            if rest[2] == "old" and previous.is_dir() and not os.path.lexists(path):
                os.rename(previous, path)
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                sibling.unlink()
        removed.append(sibling)
    return removed


def _blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` that is not a directory, if any."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def check_output_file(
    path: Path,
    option: str = "``out``",
    ours: Callable[[bytes], bool] | None = None,
    what: str = "",
    force: bool = False,
) -> None:
    """Refuse, before any work, an output file path that is a directory or cannot be made.

    With `ours` (a test of a file's first 64 KiB), an existing file that fails it (a file
    regmixd did not write: `what` names the kind) is refused too, unless `force`. An
    InputError (exit 3), as for any other existing path of the wrong kind.
    """
    path = Path(path)
    _refuse_long_name(path, option)
    _refuse_symlink(path, option)
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file path to {option}")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise InputError(f"{path}: cannot write it, {blocker} is a file, not a directory; "
                         f"choose another {option}")
    if ours is not None and not force and path.is_file() and not ours(read_head(path)):
        raise InputError(f"{path}: exists and is not {what}; choose another {option}, or pass "
                         "``force`` to replace it")


def read_head(path: Path) -> bytes:
    """A file's first 64 KiB (b'' when unreadable): enough to tell what kind of file it is."""
    try:
        with open(path, "rb") as handle:
            return handle.read(65536)
    except OSError:
        return b""


def json_with(key: str, accepted: Callable[[Any], bool]) -> Callable[[bytes], bool]:
    """A test for `check_output_file`: a JSON object whose `key` passes `accepted`."""

    def test(head: bytes) -> bool:
        try:
            data = json.loads(head.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return False
        return isinstance(data, dict) and accepted(data.get(key))

    return test


def _refuse_long_name(path: Path, option: str) -> None:
    """A name longer than the file system takes is refused before any work (not after a fit)."""
    try:
        limit = os.pathconf(_existing_ancestor(path), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(path.name)) > limit:
        raise InputError(f"{str(path)[:80]}...: file name too long ({len(os.fsencode(path.name))} "
                         f"bytes, the file system takes {limit}); choose a shorter {option}")


def _existing_ancestor(path: Path) -> Path:
    for parent in output_path(path).parents:
        if parent.is_dir():
            return parent
    return Path("/")


def _refuse_symlink(path: Path, option: str) -> None:
    """An output that is a symbolic link is refused: replacing it would replace the link, not
    what it points to, and writing through it would write somewhere the user did not name."""
    if path.is_symlink():
        raise InputError(f"{path}: is a symbolic link (to {os.path.realpath(path)}); give the "
                         f"real path to {option}")


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_not_input(
    output: Path | str, inputs: Iterable[Path | str | None], option: str = "``out``"
) -> None:
    """Refuse (UsageError, exit 2) an output that would overwrite or delete one of the inputs.

    Refused: the output is an input (also through a symbolic link or a hard link) or a
    directory that holds an input. Commands whose input is a directory (a model, a store)
    list the files they read in it too. Inputs that do not exist (e.g. `--prior uniform`)
    are ignored.
    """
    out = os.path.realpath(output)
    out_exists = os.path.lexists(output)
    for given in inputs:
        if given is None or not os.path.exists(given):
            continue
        real = os.path.realpath(given)
        same = out == real
        if not same and out_exists:
            with contextlib.suppress(OSError):
                same = os.path.samefile(output, given)
        if same or _inside(real, out):
            what = "is that input" if same else "holds that input"
            raise UsageError(f"{option} {output}: {what} ({given}); writing it would destroy "
                             f"the input; choose another {option}")


# The files of a model or store directory that its readers open.
_DIRECTORY_INPUTS = ("model.json", "*.ubj", "manifest.json", "*.parquet")


def input_paths(*paths: Path | str | None) -> list[Path]:
    """The given inputs, and for a directory also the model/store files in it (for
    `check_not_input`: `--out model/model.json` is the model)."""
    found: list[Path] = []
    for given in paths:
        if given is None:
            continue
        path = Path(given)
        found.append(path)
        if path.is_dir():
            with contextlib.suppress(OSError):
                for pattern in _DIRECTORY_INPUTS:
                    found.extend(sorted(path.glob(pattern)))
    return found


def check_output_dir(path: Path, option: str = "``out``") -> None:
    """Refuse, before any work, an output directory path that is a file or cannot be made."""
    path = Path(path)
    _refuse_long_name(path, option)
    _refuse_symlink(path, option)
    if output_path(path) == Path("/"):
        raise InputError(f"{path}: is the root directory; choose another {option}")
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory; choose another {option}")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise InputError(f"{path}: cannot create it, {blocker} is a file, not a directory; "
                         f"choose another {option}")


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """File-system errors on `path`'s temporary siblings (or inside them) name `path` (the
    CLI turns ENOSPC, EACCES, EROFS... into one `Error: PATH: ...` line)."""
    temporary = str(path.parent / f".{temp_stem(path)}.")
    try:
        yield
    except OSError as exc:
        if exc.filename is not None and os.fsdecode(exc.filename).startswith(temporary):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory and a rename."""
    path = output_path(path)
    with _naming(path):
        _atomic_write_bytes(path, data)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    check_output_file(path, "the output")  # a late check: commands check their paths first
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
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


def not_utf8_reason(data: bytes) -> str:
    """Why bytes that failed to decode as UTF-8 are not accepted, and what to do about it."""
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            return f"{name} text; regmixd reads UTF-8: convert it (iconv -f {name} -t UTF-8)"
    if b"\x00" in data[:4096]:
        return "binary data, not UTF-8 text"
    return ("not UTF-8 text (Latin-1?); regmixd reads UTF-8: convert it "
            "(iconv -f LATIN1 -t UTF-8)")


def read_json(path: Path, what: str = "JSON file") -> Any:
    """Read a JSON file, turning every failure into one InputError naming the file.

    UTF-8 with or without a byte-order mark is accepted; other encodings are refused.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"{path}: cannot read {what} ({reason})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: cannot read {what}: {not_utf8_reason(data)}") from None
    return loads_json(text, f"{path}", what)


def loads_json(text: str | bytes, where: str, what: str = "JSON") -> Any:
    """`json.loads` whose every failure is one InputError naming `where` (and the line)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}:{exc.lineno}: malformed {what}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{where}: malformed {what}: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # e.g. an integer of > 4300 digits
        message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(f"{where}: malformed {what}: {message[:80]}") from None


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `path` only if the block succeeds.

    The directory is built next to `path` (same filesystem, so the final rename is atomic).
    An existing `path` is moved aside, the new one renamed in, and the old one deleted; if
    anything fails before the swap, `path` is untouched and the temporary directory removed.
    """
    path = output_path(path)
    check_output_dir(path, "the output")
    with _naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
        # mkdtemp makes a private (0700) directory; outputs get the usual umask-based mode.
        os.chmod(tmp, 0o777 & ~_umask())
    try:
        with _naming(path):
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    if path.exists():
        if not path.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            raise InputError(f"{path}: exists and is not a directory; choose another ``out``")
        if _exchange(tmp, path):
            # One atomic step: `path` is the new directory and `tmp` holds the previous one.
            shutil.rmtree(tmp, ignore_errors=True)
            return
        # No atomic exchange here (not Linux, or the filesystem lacks it): two renames; a
        # kill between them leaves the previous directory in `old`, put back by the next write.
        old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".old", dir=path.parent))
        os.rename(path, old / "previous")
    try:
        os.rename(tmp, path)
    except BaseException:
        if old is not None:
            os.rename(old / "previous", path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a libc without renameat2 (glibc < 2.28, some musl)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))
