"""The store contract suite: every test takes ``store``, one metadata store per back end.

As Dagster's storage suites do, one parametrized fixture gives the same tests a SQLite store, a
PostgreSQL store (a fresh database on 127.0.0.1:5432; ``postgres`` marker) and the HTTP store (a
``RemoteMetadataStore`` talking to a real ``qflow server`` on loopback, over its own SQLite).
The server is shared by the module's tests, so tests name their own workflows (``unique``) and
never assume an empty store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from qflow.store.contract import MetadataStore
from qflow.store.metadata.store import SqlMetadataStore
from qflow.store.remote import RemoteMetadataStore
from tests.conftest import _postgres_database

TOKEN = "contract-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A ``qflow server`` process on 127.0.0.1 over ``store_url``; ``kill``/``start`` restart it
    on the same port and store."""

    store_url: str
    artifacts: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qflow",
                "server",
                "--store",
                self.store_url,
                "--artifacts",
                str(self.artifacts),
                "--port",
                str(self.port),
            ],
            env={**env, "QFLOW_SERVER_TOKEN": TOKEN, "NO_COLOR": "1"},
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{self.url}/health", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.process.kill()
                    raise RuntimeError("qflow server did not start") from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, connections dropped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def start_server(folder: Path) -> Server:
    server = Server(f"sqlite:///{folder / 'server.db'}", folder / "artifacts", free_port())
    server.start()
    return server


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("contract-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    """The metadata store under test: SQL on SQLite or PostgreSQL, or HTTP."""
    if request.param == "sqlite":
        sql = SqlMetadataStore(f"sqlite:///{tmp_path / 'qflow.db'}")
        yield sql
        sql.dispose()
    elif request.param == "postgres":
        for url in _postgres_database():
            sql = SqlMetadataStore(url)
            yield sql
            sql.dispose()
    else:
        server: Server = request.getfixturevalue("shared_server")
        remote = RemoteMetadataStore(server.url, TOKEN)
        yield remote
        remote.dispose()


@pytest.fixture
def unique() -> str:
    """A name no other test uses (the HTTP store's server is shared)."""
    return f"wf_{uuid.uuid4().hex[:12]}"
