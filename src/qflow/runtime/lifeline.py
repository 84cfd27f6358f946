"""Child processes that end with their parent, even when the parent is killed by ``kill -9``
and cannot tell them: a daemon thread watches the parent pid (a child is re-parented when
its parent dies) and ends the child."""

from __future__ import annotations

import os
import signal
import threading
import time

POLL_SECONDS = 0.2


def end_with_parent(parent: int, *, orderly: bool = False) -> None:
    """Watch ``parent``; when it is gone, exit at once, or with ``orderly`` send this process
    SIGTERM so that it stops as after Ctrl-C (a run records itself ``killed``)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        if orderly:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            os._exit(1)

    threading.Thread(target=watch, name="qflow-lifeline", daemon=True).start()
