"""Signs of life for a running run, and turning Ctrl-C and SIGTERM into an orderly stop.

A run whose process is gone shows as ``crashed``, never ``running`` forever: the coordinator
refreshes the run's heartbeat, and ``MetadataStore.mark_crashed_runs`` declares dead a run
whose process no longer exists on this host or whose heartbeat is too old.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qflow.store.contract import MetadataStore

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0


class Heartbeat:
    """Refresh ``runs.heartbeat_at`` every ``every`` seconds in a daemon thread."""

    def __init__(self, metadata: MetadataStore, run_id: str, every: float = HEARTBEAT_SECONDS):
        self.metadata = metadata
        self.run_id = run_id
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="qflow-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.metadata.heartbeat(self.run_id)
            except Exception as exc:  # a busy database must not kill the run
                logger.debug("heartbeat of %s failed: %s", self.run_id, exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def interrupts_end_the_run(farewell: str = "") -> Iterator[None]:
    """Inside the block, the first Ctrl-C or SIGTERM raises ``KeyboardInterrupt``, so the run
    stops, flushes what it logged and is recorded as ``killed``; a second one while it is
    stopping exits at once (code 130), and the run is then found ``crashed``. Before that hard
    exit the terminal's cursor is shown again (a live display hides it) and ``farewell`` is
    printed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) > 1:
            _say_farewell(farewell)
            os._exit(130)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say_farewell(text: str) -> None:
    stream = sys.__stderr__
    if stream is None:
        return
    try:
        if stream.isatty():
            stream.write("\x1b[?25h\n")  # show the cursor rich's live display hid
        if text:
            stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass
