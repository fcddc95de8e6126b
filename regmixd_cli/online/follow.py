"""Reading a growing training log for `regmixd online --follow`.

`LogSource` tails the file (appended lines, or a rewritten trainer_state.json); the parsing
under it is pure functions over text (`online/log_parse.py`, re-exported here). A line log
truncated, replaced or rewritten in place is read again from the start. The polling loop,
the clock and the signals live in the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regmixd_cli.errors import InputError
from regmixd_cli.online.log_parse import (
    LOG_FORMATS,
    Chunk,
    LogCursor,
    Observation,
    detect_log_format,
    metric_keys,
    parse_chunk,
    parse_trainer_state,
    trainer_state_key,
)

__all__ = [
    "LOG_FORMATS",
    "Chunk",
    "LogCursor",
    "LogSource",
    "Observation",
    "detect_log_format",
    "metric_keys",
    "parse_chunk",
    "parse_trainer_state",
    "trainer_state_key",
]


# Bytes compared at each end of what was read, to notice a log rewritten in place.
_PROBE = 4096

# Lines with a step but without the followed metric after which a misnamed --metric is
# suspected (trainers log training loss more often than evaluations, so not after one line).
SUSPECT_RECORDS = 20


class LogSource:
    """Reads what is new in a log: appended complete lines, or a rewritten trainer_state.json.

    Warnings for the user collect in `warnings`; the caller prints and clears them.
    """

    def __init__(self, path: Path, fmt: str, metric: str, run: str | None) -> None:
        self.path, self.fmt, self.metric = path, fmt, metric
        self.run = run
        self.cursor: LogCursor = LogCursor(run=run)
        self.inode: int | None = None  # line logs: a new inode means the file was replaced
        self.signature: tuple[int, int] | None = None  # hf: (mtime_ns, size) last parsed
        self.bad_signature: tuple[int, int] | None = None  # hf: last version found invalid
        self.announced: set[str] = set()
        self.warnings: list[str] = []
        self.metrics: set[str] = set()
        self.seen_metric = False
        self.metric_warned = False
        self.records = 0  # complete lines with a step read from the followed run
        # Line logs: the size at the last read. Growth is judged by it, not by the cursor:
        # a half-written last line stays unconsumed, and must not count as growth forever.
        self.size: int | None = None
        self.mtime: int | None = None
        # Line logs: the first and the last consumed bytes (up to _PROBE each). A log
        # rewritten in place to the same or a larger size keeps its inode and size, so only
        # its bytes tell that what was read is gone.
        self.head = b""
        self.tail = b""

    def read(self) -> tuple[tuple[Observation, ...], bool]:
        """New observations, and whether the file changed since the last read."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:  # announced once by the caller at start
            return (), False
        if self.fmt == "hf":
            return self._read_whole(stat.st_mtime_ns, stat.st_size)
        return self._read_lines(stat.st_size, stat.st_ino, stat.st_mtime_ns)

    def _read_whole(self, mtime: int, size: int) -> tuple[tuple[Observation, ...], bool]:
        # A version already parsed, or already found unreadable/invalid, is no growth: a file
        # left half-written by a dead trainer must not hold off --timeout forever.
        if (mtime, size) in (self.signature, self.bad_signature):
            return (), False
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.warnings.append(
                f"{self.path}: cannot read yet ({exc.__class__.__name__}); retrying"
            )
            self.bad_signature = (mtime, size)
            return (), True
        observations = parse_trainer_state(text, self.metric, str(self.path), self.metrics)
        if observations is None and text.startswith("version https://git-lfs.github.com/spec/"):
            raise InputError(f"{self.path}: a Git LFS pointer, not the file itself: run "
                             "`git lfs pull` in its repository")
        if observations is None:
            # Half-written (the trainer rewrites it in place): read again when it changes,
            # and say so once per version of the file.
            self.warnings.append(f"{self.path}: not valid trainer_state JSON yet; retrying")
            self.bad_signature = (mtime, size)
            return (), True
        self.signature = (mtime, size)
        self.seen_metric = self.seen_metric or bool(observations)
        return observations, True

    def _rewritten(self) -> bool:
        """Whether the bytes already consumed are no longer those in the file."""
        offset = self.cursor.offset
        if offset == 0:
            return False
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(len(self.head))
                handle.seek(offset - len(self.tail))
                tail = handle.read(len(self.tail))
        except OSError:
            return False
        return head != self.head or tail != self.tail

    def _read_lines(
        self, size: int, inode: int, mtime: int = 0
    ) -> tuple[tuple[Observation, ...], bool]:
        replaced = self.inode is not None and inode != self.inode
        changed = size != self.size or mtime != self.mtime
        if size < self.cursor.offset or replaced or (changed and self._rewritten()):
            self.warnings.append(
                f"{self.path} was truncated or replaced (or rewritten in place); reading it "
                "again from the start"
            )
            self.cursor = LogCursor(run=self.run)
            self.size = None
            self.head = self.tail = b""
        self.inode = inode
        if (size == self.size and mtime == self.mtime) or size == self.cursor.offset:
            self.size, self.mtime = size, mtime
            return (), False
        self.size, self.mtime = size, mtime
        start = self.cursor.offset
        with open(self.path, "rb") as handle:
            handle.seek(start)
            data = handle.read(size - start)
        chunk = parse_chunk(
            data, self.cursor, fmt=self.fmt, metric=self.metric, name=str(self.path)
        )
        self.cursor = chunk.cursor
        consumed = data[: chunk.cursor.offset - start]
        if start == 0:
            self.head = consumed[:_PROBE]
        self.tail = (self.tail + consumed)[-_PROBE:] if consumed else self.tail
        for message in chunk.warnings:
            self.warnings.append(message)
        for other in sorted(chunk.other_runs - self.announced):
            self.warnings.append(
                f"{self.path}: ignoring run {other!r}; following run {self.cursor.run!r} "
                "(choose with ``run``)"
            )
            self.announced.add(other)
        self.metrics |= chunk.metrics_seen
        self.records += chunk.records
        self.seen_metric = self.seen_metric or bool(chunk.observations)
        return chunk.observations, True

    def partial_line(self) -> int | None:
        """The line number of a half-written last line left unread, if there is one."""
        if self.fmt == "hf" or self.size is None or self.size <= self.cursor.offset:
            return None
        return self.cursor.line + 1

    def metric_suspect(self) -> bool:
        """True once (then False) when the lines read so far suggest --metric is misnamed.

        Evidence: a metric seen in the log is a near-miss of the requested name (a typo), or
        SUSPECT_RECORDS lines with a step carried other metrics and never this one.
        """
        if self.metric_warned or self.seen_metric or not self.metrics:
            return False
        if self.records < SUSPECT_RECORDS and not self._near_misses():
            return False
        self.metric_warned = True
        return True

    def _near_misses(self) -> list[str]:
        import difflib

        return difflib.get_close_matches(self.metric, sorted(self.metrics), n=3, cutoff=0.75)

    def metric_hint(self, early: bool = False) -> str:
        """Why nothing is (or was) decided: the metric has not appeared in the log."""
        seen = ", ".join(sorted(self.metrics)) or "none"
        near = self._near_misses()
        if early:
            hint = (
                f"{self.path}: no value of metric {self.metric!r} in the {self.records} line(s) "
                f"read so far; metrics seen: {seen}"
            )
            hint += f"; did you mean ``metric`` {near[0]}?" if near else "; check ``metric``"
            return hint + " (still watching)"
        hint = f"{self.path}: no value of metric {self.metric!r} was read; metrics seen: {seen}"
        return hint + (f"; did you mean ``metric`` {near[0]}?" if near else "")


@dataclass(frozen=True, slots=True)
class TargetsObservation:
    """Every target's value at one step (a model of several targets decides on all of them)."""

    step: int
    value: dict[str, float]
    where: str


class TargetsSource:
    """Several metrics of one log, each tailed by its own LogSource: an observation is a step
    at which every metric has a value (they may come on one line or on several).

    Reads like a LogSource for the watcher (`read`, `warnings`, `metric_suspect`, ...).
    """

    def __init__(self, path: Path, fmt: str, metrics: list[str], run: str | None) -> None:
        self.path, self.metrics = path, list(metrics)
        self.sources = [LogSource(path, fmt, m, run) for m in self.metrics]
        self.pending: dict[int, dict[str, tuple[float, str]]] = {}
        self.warnings: list[str] = []
        self.span: dict[str, tuple[int, int]] = {}  # each metric's first and last step read
        self.completed = 0

    def read(self) -> tuple[tuple[TargetsObservation, ...], bool]:
        grew = False
        for metric, source in zip(self.metrics, self.sources, strict=True):
            observations, changed = source.read()
            grew = grew or changed
            for obs in observations:
                self.pending.setdefault(obs.step, {})[metric] = (obs.value, obs.where)
                first, last = self.span.get(metric, (obs.step, obs.step))
                self.span[metric] = (min(first, obs.step), max(last, obs.step))
            for message in source.warnings:
                if message not in self.warnings:
                    self.warnings.append(message)
            source.warnings.clear()
        complete = sorted(s for s, seen in self.pending.items() if len(seen) == len(self.metrics))
        out = []
        for step in complete:
            seen = self.pending.pop(step)
            out.append(TargetsObservation(step, {m: seen[m][0] for m in self.metrics},
                                          seen[self.metrics[-1]][1]))
        if complete:  # steps before a complete one can no longer be decided on: forget them
            self.completed += len(complete)
            for step in [s for s in self.pending if s < complete[-1]]:
                del self.pending[step]
        return tuple(out), grew

    def never_together(self) -> str | None:
        """Why nothing was decided when every target was read but never at one step."""
        if self.completed or len(self.span) < len(self.metrics):
            return None
        spans = ", ".join(f"{m} at steps {a}..{b}" for m, (a, b) in self.span.items())
        return (f"{self.path}: every target was read, but never at one step ({spans}); a "
                "decision needs every target's value at the same step: log them together")

    @property
    def seen_metric(self) -> bool:
        return all(s.seen_metric for s in self.sources)

    @property
    def metric_warned(self) -> bool:
        return any(s.metric_warned for s in self.sources)

    def metric_suspect(self) -> bool:
        return any(s.metric_suspect() for s in self.sources)

    def metric_hint(self, early: bool = False) -> str:
        """Which target the log has not given (no `--metric` advice: it takes one target)."""
        source = ([s for s in self.sources if not s.seen_metric] or self.sources)[0]
        seen = ", ".join(sorted(source.metrics)) or "none"
        near = [m for m in source._near_misses() if m not in self.metrics]
        read = f"in the {source.records} line(s) read so far" if early else "was read"
        hint = (f"{self.path}: no value of target {source.metric!r} {read}; metrics seen: "
                f"{seen}; the log must give every target ({', '.join(self.metrics)})")
        hint += f"; is {near[0]!r} that target?" if near else ""
        return hint + (" (still watching)" if early else "")

    def partial_line(self) -> int | None:
        return self.sources[0].partial_line()

    def missing_target(self) -> str | None:
        """A target the log never gave while it gave others (the log lacks it), or None."""
        seen = [s.seen_metric for s in self.sources]
        if any(seen) and not all(seen):
            return self.metrics[seen.index(False)]
        return None
