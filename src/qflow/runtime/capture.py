"""A step's stdout and stderr: kept whole for its log, echoed to the stream they replace.

The echo must never hurt the step. A closed or broken stream (``qflow run … | head -1``)
stops the echo and the copy keeps everything. The echo cannot loop: it goes to the stream
that was ``sys.stdout``/``sys.stderr`` when the step started (rich's live display binds its
console to the real terminal, see ``runtime.progress``), and a write that comes back into
the capture while it is echoing (a user's own console writing to ``sys.stderr``) is kept but
not echoed twice.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TextIO


class StreamCopy(io.TextIOBase):
    """Writes to ``stream`` and keeps a copy; a failing ``stream`` only ends the echo."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.copy = io.StringIO()
        self._echo = True
        self._echoing: set[int] = set()
        """The threads echoing through this copy right now (a set: cheaper to make per step
        than a ``threading.local``)."""

    def write(self, text: str) -> int:
        self.copy.write(text)
        if self._echo:
            thread = threading.get_ident()
            if thread not in self._echoing:
                self._echoing.add(thread)
                try:
                    self.stream.write(text)
                except (OSError, ValueError):  # broken pipe, closed file
                    self._echo = False
                finally:
                    self._echoing.discard(thread)
        return len(text)

    def flush(self) -> None:
        if self._echo:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self._echo = False

    def isatty(self) -> bool:
        try:
            return self._echo and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"


class LinePrefixer(io.TextIOBase):
    """A worker process's echo: whole lines, each prefixed with the step that wrote it, so
    steps running side by side in several processes never interleave mid-line. Each batch of
    lines goes out in one write (atomic on a pipe or terminal up to 4 KiB)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.label = ""
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if lines:
            self.stream.write("".join(f"[{self.label}] {line}\n" for line in lines))
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        """End a step: its last line, even without a newline, goes out with its prefix."""
        if self._partial:
            self.write("\n")
        self.stream.flush()

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def captured_output() -> Iterator[tuple[StreamCopy, StreamCopy]]:
    """Capture ``sys.stdout`` and ``sys.stderr`` for the duration of one step."""
    out, err = StreamCopy(sys.stdout), StreamCopy(sys.stderr)
    replaced = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = replaced


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_LOG_LEVEL = logging.INFO
_FORMATTER = logging.Formatter(LOG_FORMAT)


class StepLogHandler(logging.Handler):
    """Writes a step's log records into its captured stderr. When the user's own logging
    setup (``logging.basicConfig``, Ray's) already prints them, the record is only kept,
    not echoed a second time."""

    def __init__(self, err: StreamCopy, level: int, echo: bool) -> None:
        super().__init__(level)
        self.err = err
        self.echo = echo
        self.setFormatter(_FORMATTER)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + "\n"
            if self.echo:
                self.err.write(text)
            else:
                self.err.copy.write(text)
        except Exception:  # logging must never fail the step
            self.handleError(record)


_spare_handlers: list[StepLogHandler] = []
"""Handlers of steps that ended, taken again by the next steps (making one, with its lock and
the registrations logging keeps of it, costs more than the rest of a trivial step's logging)."""


def _step_handler(err: StreamCopy, level: int, echo: bool) -> StepLogHandler:
    try:
        handler = _spare_handlers.pop()
    except IndexError:
        return StepLogHandler(err, level, echo)
    handler.err, handler.echo = err, echo
    handler.setLevel(level)
    return handler


@contextlib.contextmanager
def captured_logging(err: StreamCopy, level: int, loggers: Iterable[str]) -> Iterator[None]:
    """Keep the log records of one step at ``level`` and above in its stderr.

    ``loggers`` are the project's (the step's top-level package): the ones the user has not
    given a level of their own log at ``level`` while the step runs; third-party loggers
    keep their levels (WARNING through the root logger, as Python does by default).
    """
    root = logging.getLogger()
    echo = not any(not isinstance(h, StepLogHandler) for h in root.handlers)
    handler = _step_handler(err, level, echo)
    changed: list[logging.Logger] = []
    for name in dict.fromkeys(loggers):
        logger = logging.getLogger(name)
        if logger is not root and logger.level == logging.NOTSET:
            changed.append(logger)
            _set_level(logger, level)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        _spare_handlers.append(handler)
        for logger in changed:
            if logger.level == level:  # unless the step set a level of its own
                _set_level(logger, logging.NOTSET)


_LOGGING_LOCK: threading.RLock = logging._lock  # type: ignore[attr-defined]
_subtrees: dict[str, tuple[int, tuple[str, ...]]] = {}
"""Logger name -> (size of logging's registry, names under it) when they were listed: the
registry only grows, so a list is current while the size is unchanged."""


def _set_level(logger: logging.Logger, level: int) -> None:
    """``logger.setLevel(level)``, forgetting the cached ``isEnabledFor`` answers of only the
    loggers whose effective level that changes: ``logger`` and the ones under it.

    ``setLevel`` forgets every logger's: with Ray's and MLflow's ~290 loggers loaded, the two
    calls of a step cost 22 µs, more than the rest of a trivial mapped item's logging. Logging
    computes and caches an answer holding its lock, so changing the level under that lock
    leaves no stale answer behind.
    """
    registry = logger.manager.loggerDict
    listed = _subtrees.get(logger.name)
    if listed is None or listed[0] != len(registry):
        prefix = f"{logger.name}."
        listed = (len(registry), tuple(n for n in list(registry) if n.startswith(prefix)))
        _subtrees[logger.name] = listed
    with _LOGGING_LOCK:
        logger.level = level
        logger._cache.clear()  # type: ignore[attr-defined]
        for name in listed[1]:
            below = registry.get(name)
            if isinstance(below, logging.Logger):
                below._cache.clear()  # type: ignore[attr-defined]


def log_level(text: str | int | None) -> int:
    """A level from its name (``DEBUG``, ``info``) or number; ``None`` is the default."""
    if text is None or text == "":
        return DEFAULT_LOG_LEVEL
    if isinstance(text, int):
        return text
    if text.strip().isdigit():
        return int(text)
    level = logging.getLevelName(text.strip().upper())
    return level if isinstance(level, int) else DEFAULT_LOG_LEVEL
