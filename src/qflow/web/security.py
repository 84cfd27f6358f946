"""The server's gatekeeper, an ASGI middleware run before any route.

In order: the Host header must name an allowed host (DNS rebinding); a body larger than the
limit gets 413 from ``Content-Length`` before a byte is read (and chunked bodies are cut off
at the limit); every path except ``PUBLIC_PATHS`` and ``/static/`` needs the token (an
``Authorization: Bearer`` header, or the HttpOnly cookie the login page sets); and a write
authenticated by cookie must repeat the CSRF cookie in an ``X-CSRF-Token`` header
(double-submit). ``GET /any/page?token=…`` logs in and redirects without the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from qflow.web.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/health", "/login", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
TOKEN_COOKIE = "qflow_token"
CSRF_COOKIE = "qflow_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """Loopback names, the bound address, and this machine's names when bound to all."""
    hosts = list(LOOPBACK)
    if bind_host not in ("0.0.0.0", "::", ""):
        hosts.append(bind_host)
    else:
        hosts += [socket.gethostname(), socket.getfqdn()]
    return tuple(dict.fromkeys(h.lower() for h in hosts))


def host_name(header: str) -> str:
    """``example.com:8000`` → ``example.com``; ``[::1]:80`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _TooLarge(Exception):
    pass


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        allowed_hosts: tuple[str, ...],
        max_body_bytes: int,
        secure_cookies: bool = False,
    ) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.max_body_bytes = max_body_bytes
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for raw_key, raw_value in scope.get("headers", []):
            key = raw_key.decode("latin-1").lower()
            headers[key] = raw_value.decode("latin-1") if key not in headers else headers[key]
        problem = self._check(scope, headers)
        if problem is not None:
            await _respond(send, *problem)
            return
        cookies = _cookies(headers.get("cookie", ""))
        csrf = cookies.get(CSRF_COOKIE) or ""
        new_csrf = None
        if not _valid_csrf(csrf):
            new_csrf = csrf = secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf"] = csrf
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        if not _public(path):
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            via_query = query.get("token")
            if via_query is not None and method == "GET" and self._ok(via_query):
                del query["token"]
                location = "/" + quote(path.lstrip("/"), safe="/-._~")
                location += "?" + urlencode(query) if query else ""
                await _redirect(send, location, self._cookie_headers(via_query, new_csrf))
                return
            bearer = _bearer(headers.get("authorization", ""))
            cookie_token = cookies.get(TOKEN_COOKIE)
            if bearer is not None:
                if not self._ok(bearer):
                    await _unauthorized(send, headers)
                    return
            elif cookie_token is None or not self._ok(cookie_token):
                await _unauthorized(send, headers)
                return
            elif method not in SAFE_METHODS and not (
                _valid_csrf(cookies.get(CSRF_COOKIE) or "")
                and hmac.compare_digest(headers.get(CSRF_HEADER, ""), cookies[CSRF_COOKIE])
            ):
                await _respond(
                    send,
                    403,
                    "csrf",
                    "The CSRF token is missing or wrong. Hint: reload the page and try again.",
                )
                return
        await self._forward(scope, receive, send, new_csrf)

    def _check(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        host = host_name(headers.get("host", ""))
        if "*" not in self.allowed_hosts and host not in self.allowed_hosts:
            return (
                421 if host else 400,
                "host_not_allowed",
                f"Host {host!r} is not served here. Hint: start the server with "
                "--allowed-host NAME to allow it.",
            )
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, "bad_length", "Content-Length is not a number."
            if int(length) > self.max_body_bytes:
                return (
                    413,
                    "too_large",
                    f"The body is {int(length)} bytes; the limit is {self.max_body_bytes}.",
                )
        return None

    def _ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def _cookie_headers(self, token: str | None, csrf: str | None) -> list[tuple[bytes, bytes]]:
        secure = "; Secure" if self.secure_cookies else ""
        out = []
        if token is not None:
            out.append(f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}")
        if csrf is not None:
            out.append(f"{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict{secure}")
        return [(b"set-cookie", c.encode("latin-1")) for c in out]

    async def _forward(self, scope: Scope, receive: Receive, send: Send, csrf: str | None) -> None:
        received = 0
        started = False
        too_large = False
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _TooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if too_large:
                # The app caught _TooLarge while reading the body (FastAPI turns it into
                # "There was an error parsing the body"): answer 413 instead, once.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _respond(send, 413, "too_large", f"The body exceeds {limit} bytes.")
                return
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers", [])
                # DENY unless the route allows its own page in a frame of this origin (the
                # dashboard's sandboxed figure frames: X-Frame-Options SAMEORIGIN).
                framing = [v for k, v in headers if k.lower() == b"x-frame-options"]
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    *([] if framing == [b"SAMEORIGIN"] else [(b"x-frame-options", b"DENY")]),
                    (b"referrer-policy", b"no-referrer"),
                    *self._cookie_headers(None, csrf),
                ]
                message["headers"] = [*headers, *extra]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            if not started:
                await _respond(send, 413, "too_large", f"The body exceeds {limit} bytes.")


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _valid_csrf(value: str) -> bool:
    return 16 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum()


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header counts as no cookies
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


async def _respond(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(send: Send, headers: dict[str, str]) -> None:
    if "text/html" in headers.get("accept", ""):
        body = (
            b'<!doctype html><meta charset="utf-8"><title>Sign in</title>'
            b'<meta http-equiv="refresh" content="0; url=/login">'
            b'<p>This QFlow server needs a token. <a href="/login">Sign in</a>.</p>'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await _respond(
        send,
        401,
        "unauthorized",
        "This QFlow server needs a token: send 'Authorization: Bearer TOKEN' or sign in at "
        "/login. Hint: qflow ui and qflow server print it at start.",
        [(b"www-authenticate", b"Bearer")],
    )


async def _redirect(send: Send, location: str, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1", errors="replace")),
                (b"content-length", b"0"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
