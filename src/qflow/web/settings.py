"""Server settings: where the stores are and how the server is protected (no FastAPI import,
so the CLI can check them before the ``server`` extra is needed)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from qflow.errors import QFlowError
from qflow.web.security import default_allowed_hosts, is_loopback

MAX_BODY_BYTES = 64 * 1024 * 1024
TOKEN_ENV = "QFLOW_SERVER_TOKEN"


class InsecureBindError(QFlowError):
    """The server would listen beyond this machine without a token."""


@dataclass(frozen=True)
class Settings:
    """Where the stores are and how the server is protected.

    ``token`` None makes a random one (printed by ``qflow ui``). ``project_dir`` enables the
    Launch page and traced graphs; ``allowed_hosts`` defaults to the loopback names and the
    bound address.
    """

    store_url: str
    artifacts_url: str
    project_dir: Path | None = None
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = MAX_BODY_BYTES
    secure_cookies: bool = False
    extra_allowed_hosts: tuple[str, ...] = field(default=())

    def checked(self) -> Settings:
        """A copy with a token and allowed hosts; refuses a non-loopback bind without a token."""
        if not is_loopback(self.host) and not self.token:
            raise InsecureBindError(
                f"Refusing to listen on {self.host!r} without a token: anyone who can reach it "
                "could read every run and start workflows.\n"
                f"Hint: pass --token-file FILE (or set {TOKEN_ENV}), or bind to 127.0.0.1."
            )
        hosts = self.allowed_hosts or default_allowed_hosts(self.host)
        return replace(
            self,
            token=self.token or secrets.token_urlsafe(24),
            allowed_hosts=tuple(dict.fromkeys((*hosts, *self.extra_allowed_hosts))),
        )
