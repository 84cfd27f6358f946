"""A metadata store on a tracking server: ``QFLOW_TRACKING_URI=http://host:port``.

``RemoteMetadataStore`` implements the whole ``qflow.store.contract.MetadataStore``: its
methods are the ``qflow.store.methods.StoreMethods`` table, each one ``POST /api/store/NAME``
(JSON; exact floats as bits; see ``qflow.store.wire``) with the server's token
(``QFLOW_TRACKING_TOKEN``). This module holds only the transport. Artifacts go to a store both
machines reach (``QFLOW_ARTIFACTS``: s3://…, a shared folder); the server records only their
keys.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from qflow.errors import InvalidValueError, MissingExtraError, StoreError
from qflow.store.methods import Method, StoreMethods

if TYPE_CHECKING:
    import httpx

    from qflow.store import contract

URI_ENV = "QFLOW_TRACKING_URI"
TOKEN_ENV = "QFLOW_TRACKING_TOKEN"
TIMEOUT = 60.0
RETRY_SECONDS = 60.0
"""How long a call is retried while the tracking server is unreachable or restarting."""
TRANSIENT_STATUS = frozenset({502, 503, 504})


class RemoteMetadataStore(StoreMethods):
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
        RemoteMetadataStore.__init__(self, state["url"], state["token"])

    def __repr__(self) -> str:
        return f"RemoteMetadataStore({self.url!r})"

    def dispose(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            try:
                import httpx
            except ImportError as exc:
                raise MissingExtraError.for_extra("httpx", "server") from exc
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            client = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)
            self._local.client = client
        return client

    def invoke(
        self, method: Method[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        body = method.encode_call(args, kwargs)
        if method.is_empty(body):
            return method.empty[1] if method.empty else None
        if method.split is not None and len(body[method.split[0]]) > method.split[1]:
            name, size = method.split
            items = body[name]
            answers = [
                self._post(method, {**body, name: items[start : start + size]})
                for start in range(0, len(items), size)
            ]
            return method.result.decode(answers[-1])
        return method.result.decode(self._post(method, body))

    def _post(self, method: Method[Any, Any], body: dict[str, Any]) -> Any:
        """POST one call; transient failures (server unreachable or restarting, a connection
        dropped, 502/503/504) are retried with backoff for ``RETRY_SECONDS``.

        A request that may have reached the server is sent again only for ``repeatable``
        methods (see ``qflow.store.methods``), with the method's ``resend`` changes (a metric
        batch says ``retry`` so the server first checks it was not stored already).
        """
        import httpx

        # A server never reached (a wrong URI, not started) fails at once; one that answered
        # before is restarting or briefly unreachable, and is waited for.
        deadline = time.monotonic() + (RETRY_SECONDS if self._reached else 0.0)
        delay = 0.1
        while True:
            try:
                response = self._client().post(
                    f"/api/store/{method.name}",
                    content=json.dumps(body, separators=(",", ":")),  # NaN and ±Infinity too
                    headers={"content-type": "application/json"},
                )
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if (not unsent and not method.repeatable) or time.monotonic() + delay > deadline:
                    raise StoreError(
                        f"Cannot reach the tracking server at {self.url}: {exc}. "
                        "Hint: start it (qflow server) or fix QFLOW_TRACKING_URI."
                    ) from exc
                if not unsent:
                    body.update(method.resend)  # it may have arrived
                self.dispose()  # a fresh connection for the next attempt
            else:
                self._reached = True
                if (
                    response.status_code not in TRANSIENT_STATUS
                    or not method.repeatable
                    or time.monotonic() + delay > deadline
                ):
                    return self._result(method, response)
                body.update(method.resend)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _result(self, method: Method[Any, Any], response: httpx.Response) -> Any:
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
            raise method.not_found(message)
        if code == "invalid_filter":
            from qflow.store.filters import FilterError

            raise FilterError(message)
        if response.status_code in (409, 422, 400):
            raise InvalidValueError(message)
        raise StoreError(
            f"The tracking server at {self.url} failed ({response.status_code}): {message}"
        )


if TYPE_CHECKING:

    def _implements_the_contract(store: RemoteMetadataStore) -> contract.MetadataStore:
        return store
