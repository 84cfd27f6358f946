"""Live updates of a run by server push: ``GET /api/runs/{run_id}/stream``, Server-Sent Events.

Workers send metrics to the coordinator, which alone writes the store; the server has no other
signal than the store, so each stream looks at it every ``TICK_SECONDS`` (a few indexed queries)
and pushes only what changed. The page then needs no polling of its own, and a point reaches
the screen within the runtime's flush interval plus one tick.

Events (each ``data`` is one JSON document):

- ``run``: the run as ``GET /api/runs/{run_id}`` answers it, first and whenever it changes;
- ``history``: points of one metric as ``GET /api/runs/{run_id}/history`` answers them, plus
  ``reset``: true for the first message of a key (the whole history, downsampled unless
  ``full``), false for the points logged since the previous message;
- ``logs``: entries of ``GET /api/runs/{run_id}/logs`` for the steps whose output or status
  changed;
- ``end``: the run is no longer running (``{"status": ...}``), or no longer exists
  (``{"status": null, "error": ...}``); the stream closes after it.

A comment line is sent every ``KEEPALIVE_SECONDS`` so proxies keep a quiet stream open. A
browser's ``EventSource`` reconnects by itself; a new stream starts with the whole state again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Response
from starlette.types import Receive, Scope, Send

from qflow.errors import RunNotFoundError
from qflow.store.contract import CHART_POINTS
from qflow.store.metadata.records import RunStatus
from qflow.web.context import Context
from qflow.web.routes.api_metrics import to_json
from qflow.web.routes.api_run import log_entry, run_detail
from qflow.web.routes.params import Ctx, RunId
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api", tags=["runs"], responses=ERRORS)
TICK_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0


def event(name: str, data: Any) -> bytes:
    """One SSE message (JSON has no raw newlines, so ``data`` is one line)."""
    return b"event: " + name.encode() + b"\ndata: " + to_json(data) + b"\n\n"


class RunWatch:
    """What one stream has sent of a run, and the events that bring a viewer up to date."""

    def __init__(self, ctx: Context, run_id: str, *, full: bool, points: int) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.full = full
        self.points = points
        self.run = b""
        self.cursors: dict[str, int] = {}  # metric key -> id of the last point sent
        self.counts: dict[str, int] = {}  # metric key -> points the store had then
        self.logs: dict[str, bytes] = {}  # step name -> its log entry as sent
        self.ended = False

    def events(self) -> list[bytes]:
        """What changed since the last call (the run's status is read first, so the points
        and logs read after it are complete when the run has ended)."""
        run = self.ctx.metadata.get_run(self.run_id, summary=False)
        steps = self.ctx.metadata.step_runs(run.id)
        detail = run_detail(self.ctx, run, steps)
        out = []
        text = to_json(detail)
        if text != self.run:
            self.run = text
            out.append(event("run", detail))
        for entry in detail["metric_keys"]:
            key, count = entry["key"], entry["points"]
            if self.counts.get(key) == count:
                continue
            history = self.ctx.metadata.metric_history(
                self.run_id, key, full=self.full, points=self.points, after=self.cursors.get(key, 0)
            )
            out.append(event("history", {**history, "reset": key not in self.cursors}))
            self.cursors[key] = history["last_id"]
            self.counts[key] = count
        changed = []
        for log in map(log_entry, steps):
            text = to_json(log)
            if self.logs.get(log["name"]) != text:
                self.logs[log["name"]] = text
                changed.append(log)
        if changed:
            out.append(event("logs", changed))
        if detail["status"] != RunStatus.RUNNING:
            self.ended = True
            out.append(event("end", {"status": detail["status"]}))
        return out


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStream(Response):
    """The stream's response. Unlike Starlette's ``StreamingResponse``, it notices a client
    that went away during a tick, and ends cleanly when the server stops: uvicorn cancels
    the responses still open ``timeout_graceful_shutdown`` after Ctrl-C (a run's stream
    would last as long as the run), and the browser reconnects when the server is back."""

    media_type = "text/event-stream"

    def __init__(self, watch: RunWatch) -> None:
        # Not Response.__init__: a body (even b"") would set Content-Length.
        self.watch = watch
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        gone = asyncio.ensure_future(_disconnected(receive))
        quiet_since = time.monotonic()
        try:
            while not gone.done() and not self.watch.ended:
                chunk = await self._next()
                if chunk or time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": chunk or b": keep-alive\n\n",
                            "more_body": True,
                        }
                    )
                    quiet_since = time.monotonic()
                if not self.watch.ended:
                    await asyncio.wait([gone], timeout=TICK_SECONDS)
        except asyncio.CancelledError:  # the server stops: end the response, not the server
            pass
        finally:
            gone.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _next(self) -> bytes:
        """The events of one look at the store (read in a worker thread: the store is
        synchronous and must not block the event loop)."""
        try:
            return b"".join(await anyio.to_thread.run_sync(self.watch.events))
        except RunNotFoundError as exc:  # removed meanwhile (qflow gc): nothing more to show
            self.watch.ended = True
            return event("end", {"status": None, "error": str(exc)})


@router.get("/runs/{run_id}/stream", response_class=EventStream, status_code=200)
def run_stream(
    ctx: Ctx,
    run_id: RunId,
    full: bool = False,
    points: Annotated[int, Query(ge=10, le=100_000)] = CHART_POINTS,
) -> EventStream:
    """The run's changes as Server-Sent Events (``text/event-stream``): ``run``, ``history``
    (``full`` and ``points`` as for ``/history``), ``logs`` and a last ``end`` once the run
    has ended; see the module's docstring. An unknown run is a 404 before the stream opens."""
    run = ctx.metadata.get_run(run_id, summary=False)
    return EventStream(RunWatch(ctx, run.id, full=full, points=points))
