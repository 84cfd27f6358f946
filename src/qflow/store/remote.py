"""A metadata store on a tracking server: ``QFLOW_TRACKING_URI=http://host:port``.

``RemoteMetadataStore`` has the ``MetadataStore`` methods the runtime and ``qf.Client`` use;
each is one ``POST /api/store/METHOD`` (JSON; exact floats as bits; see ``qflow.store.wire``)
with the server's token (``QFLOW_TRACKING_TOKEN``). Artifacts go to a store both machines
reach (``QFLOW_ARTIFACTS``: s3://…, a shared folder); the server records only their keys.

``open_stores(project_dir)`` is what ``qflow.store.location.open_stores`` returns when
``QFLOW_TRACKING_URI`` is set.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import (
    ArtifactNotFoundError,
    InvalidValueError,
    MissingExtraError,
    NotFoundError,
    RunNotFoundError,
    StepNotFoundError,
    StoreError,
)
from qflow.store import wire

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.metadata.records import DataFileRecord, LoggedArtifact, Metric, Run, StepRun

URI_ENV = "QFLOW_TRACKING_URI"
TOKEN_ENV = "QFLOW_TRACKING_TOKEN"
TIMEOUT = 60.0
RETRY_SECONDS = 60.0
"""How long a call is retried while the tracking server is unreachable or restarting."""
_TRANSIENT_STATUS = frozenset({502, 503, 504})
_NOT_REPEATABLE = frozenset({"create_run", "create_step_runs"})
"""Calls that would record twice if a request that reached the server were sent again."""
_NOT_FOUND: dict[str, type[NotFoundError]] = {
    "get_step_run": StepNotFoundError,
    "get_artifact": ArtifactNotFoundError,
}


def open_stores(project_dir: Path) -> tuple[RemoteMetadataStore, ArtifactStore]:
    """The tracking server in ``QFLOW_TRACKING_URI`` and the artifact store
    (``QFLOW_ARTIFACTS``, else the project's local folder)."""
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.location import default_artifacts_url

    return RemoteMetadataStore(os.environ[URI_ENV]), ArtifactStore(
        default_artifacts_url(project_dir)
    )


class RemoteMetadataStore:
    """``MetadataStore`` over HTTP; pickles as its URL (and token) alone."""

    def __init__(self, url: str, token: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise StoreError(
                f"Tracking URI {url!r} is not an http(s) URL. Hint: QFLOW_TRACKING_URI="
                "http://host:port (the address qflow server prints)."
            )
        self.url = url.rstrip("/")
        self.token = token or os.environ.get(TOKEN_ENV) or os.environ.get("QFLOW_SERVER_TOKEN")
        self._local = threading.local()
        self._reached = False

    def __getstate__(self) -> dict[str, object]:
        return {"url": self.url, "token": self.token}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["token"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"RemoteMetadataStore({self.url!r})"

    @property
    def engine(self) -> Any:
        raise StoreError(
            f"The metadata store is the tracking server at {self.url}; this needs direct "
            "database access. Hint: unset QFLOW_TRACKING_URI and use QFLOW_STORE instead."
        )

    def dispose(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                import httpx
            except ImportError as exc:
                raise MissingExtraError.for_extra("httpx", "server") from exc
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            client = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)
            self._local.client = client
        return client

    def _call(self, method: str, **body: Any) -> Any:
        """POST one store call; transient failures (server unreachable or restarting, a
        connection dropped, 502/503/504) are retried with backoff for ``RETRY_SECONDS``.

        A request that may have reached the server is re-sent only for calls that are safe to
        repeat: every call but ``create_run`` and ``create_step_runs``; a re-sent metric batch
        carries ``retry`` so the server first checks whether it was stored already.
        """
        import httpx

        # A server never reached (a wrong URI, not started) fails at once; one that answered
        # before is restarting or briefly unreachable, and is waited for.
        deadline = time.monotonic() + (RETRY_SECONDS if self._reached else 0.0)
        delay = 0.1
        while True:
            try:
                response = self._client().post(f"/api/store/{method}", json=body)
            except httpx.HTTPError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                retryable = unsent or (
                    method not in _NOT_REPEATABLE and isinstance(exc, httpx.TransportError)
                )
                if not retryable or time.monotonic() + delay > deadline:
                    raise StoreError(
                        f"Cannot reach the tracking server at {self.url}: {exc}. "
                        "Hint: start it (qflow server) or fix QFLOW_TRACKING_URI."
                    ) from exc
            else:
                self._reached = True
                if (
                    response.status_code not in _TRANSIENT_STATUS
                    or method in _NOT_REPEATABLE
                    or time.monotonic() + delay > deadline
                ):
                    break
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            if method == "log_metrics":
                body["retry"] = True
        if response.status_code == 200:
            return response.json()["result"]
        try:
            error = response.json()["error"]
            message, code = str(error["message"]), str(error["code"])
        except (ValueError, KeyError, TypeError):
            message, code = response.text[:300], "http_error"
        if response.status_code == 401:
            raise StoreError(
                f"The tracking server at {self.url} refused the token. "
                f"Hint: set {TOKEN_ENV} to the token qflow server printed."
            )
        if code == "not_found":
            raise _NOT_FOUND.get(method, RunNotFoundError)(message)
        if response.status_code in (409, 422, 400):
            raise InvalidValueError(message)
        raise StoreError(
            f"The tracking server at {self.url} failed ({response.status_code}): {message}"
        )

    # -- runs ------------------------------------------------------------------------------

    def create_run(self, **fields: Any) -> Run:
        return wire.run_from(self._call("create_run", **fields))

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        self._call("finish_run", run_id=run_id, status=status, error=error)

    def heartbeat(self, run_id: str) -> None:
        self._call("heartbeat", run_id=run_id)

    def mark_crashed_runs(self) -> list[str]:
        return list(self._call("mark_crashed_runs"))

    def get_run(self, run_id_or_prefix: str) -> Run:
        return wire.run_from(self._call("get_run", run_id=run_id_or_prefix))

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 100,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> list[Run]:
        found = self._call(
            "list_runs",
            workflow=workflow,
            status=status,
            tags=tags,
            limit=limit,
            include_archived=include_archived,
            include_deleted=include_deleted,
        )
        return [wire.run_from(r) for r in found]

    def runs_matching(
        self,
        filter_text: str,
        *,
        workflow: str | None = None,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 100,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> list[Run]:
        found = self._call(
            "list_runs",
            workflow=workflow,
            status=status,
            tags=tags,
            limit=limit,
            filter=filter_text,
            include_archived=include_archived,
            include_deleted=include_deleted,
        )
        return [wire.run_from(r) for r in found]

    def set_run_lifecycle(self, run_ids: Sequence[str], lifecycle: str) -> list[Run]:
        found = self._call("set_run_lifecycle", run_ids=list(run_ids), lifecycle=lifecycle)
        return [wire.run_from(r) for r in found]

    def workflows(self) -> list[str]:
        return list(self._call("workflows"))

    def update_run_meta(self, run_id: str, changes: dict[str, Any]) -> None:
        self._call("update_run_meta", run_id=run_id, changes=changes)

    # -- step runs -------------------------------------------------------------------------

    def create_step_runs(self, run_id: str, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        if not entries:
            return []
        rows = [
            {k: e[k] for k in ("name", "step", "position", "params")} | {"source": e.get("source")}
            for e in entries
        ]
        return [int(i) for i in self._call("create_step_runs", run_id=run_id, entries=rows)]

    def start_step_run(
        self,
        step_run_id: int,
        *,
        cache_key: str | None = None,
        fingerprint: str | None = None,
        reason: str | None = None,
    ) -> None:
        self._call(
            "start_step_run",
            step_run_id=step_run_id,
            cache_key=cache_key,
            fingerprint=fingerprint,
            reason=reason,
        )

    def finish_step_run(
        self,
        step_run_id: int,
        *,
        outputs: dict[str, ArtifactRef] | None = None,
        inputs: dict[str, ArtifactRef] | None = None,
        **fields: Any,
    ) -> None:
        self._call(
            "finish_step_run",
            step_run_id=step_run_id,
            outputs=None if outputs is None else {k: wire.ref_to(v) for k, v in outputs.items()},
            inputs=None if inputs is None else {k: wire.ref_to(v) for k, v in inputs.items()},
            **fields,
        )

    def step_runs(self, run_id: str) -> list[StepRun]:
        return [wire.step_from(s) for s in self._call("step_runs", run_id=run_id)]

    def get_step_run(self, run_id: str, name: str) -> StepRun:
        return wire.step_from(self._call("get_step_run", run_id=run_id, name=name))

    def close_step_runs(self, run_id: str, status: str, error: str) -> None:
        self._call("close_step_runs", run_id=run_id, status=status, error=error)

    def previous_step_run(self, workflow: str, name: str, before_run: str) -> StepRun | None:
        found = self._call("previous_step_run", workflow=workflow, name=name, before_run=before_run)
        return None if found is None else wire.step_from(found)

    def find_cached(self, cache_key: str) -> StepRun | None:
        found = self._call("find_cached", cache_key=cache_key)
        return None if found is None else wire.step_from(found)

    def record_data_files(self, step_run_id: int, files: Sequence[DataFileRecord]) -> None:
        if files:
            self._call(
                "record_data_files",
                step_run_id=step_run_id,
                files=[wire.data_file_to(f) for f in files],
            )

    def data_files(self, run_id: str, step_run_id: int | None = None) -> list[DataFileRecord]:
        found = self._call("data_files", run_id=run_id, step_run_id=step_run_id)
        return [wire.data_file_from(f) for f in found]

    # -- params, metrics, tags, artifacts --------------------------------------------------

    def log_metrics(
        self, rows: Sequence[tuple[str, int | None, str, float, int | None, float]]
    ) -> None:
        if not rows:
            return
        try:
            encoded = [
                {
                    "run_id": r[0],
                    "step_run_id": r[1],
                    "key": r[2],
                    "bits": wire.float_bits(float(r[3])),
                    "step": r[4],
                    "timestamp": r[5],
                }
                for r in rows
            ]
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(f"A metric value is not a number: {exc}.") from exc
        self._call("log_metrics", rows=encoded)

    def metrics(
        self, run_id: str, key: str | None = None, step_run_id: int | None = None
    ) -> list[Metric]:
        found = self._call("metrics", run_id=run_id, key=key, step_run_id=step_run_id)
        return [wire.metric_from(m) for m in found]

    def log_params(
        self, run_id: str, params: dict[str, object], step_run_id: int | None = None
    ) -> None:
        import json

        plain = json.loads(json.dumps(params, default=_json_default))
        self._call("log_params", run_id=run_id, params=plain, step_run_id=step_run_id)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._call("set_tags", run_id=run_id, tags=tags)

    def log_run_artifact(
        self, run_id: str, name: str, ref: ArtifactRef, step_run_id: int | None = None
    ) -> None:
        self._call(
            "log_run_artifact",
            run_id=run_id,
            name=name,
            ref=wire.ref_to(ref),
            step_run_id=step_run_id,
        )

    def run_artifacts(self, run_id: str) -> list[LoggedArtifact]:
        return [wire.logged_from(a) for a in self._call("run_artifacts", run_id=run_id)]

    def get_artifact(self, key: str) -> ArtifactRef:
        return wire.ref_from(self._call("get_artifact", key=key))

    # -- provenance --------------------------------------------------------------------------

    def save_environment(self, hash: str, packages: dict[str, str]) -> None:
        self._call("save_environment", hash=hash, packages=packages)

    def environment(self, hash: str) -> dict[str, str] | None:
        found = self._call("environment", key=hash)
        return None if found is None else dict(found)

    def save_sources(self, texts: Sequence[str]) -> list[str]:
        return [str(k) for k in self._call("save_sources", texts=list(texts))]

    def source(self, key: str) -> str | None:
        found = self._call("source", key=key)
        return None if found is None else str(found)


def _json_default(value: object) -> object:
    """numpy scalars and arrays become numbers and lists; anything else its ``str``."""
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    return str(value)
