"""Dashboard pages, login, health and static files.

Every page is the same HTML shell, the single-page app built from ``frontend/`` (Vite,
Preact, TanStack Table, uPlot) into ``static/app/`` by the package build (``hatch_build.py``)
or ``npm run build``; it reads the path and draws the page from the JSON API. Static files
are looked up in a fixed table (no path from the request is ever opened) and sent gzipped
when the browser accepts it; Plotly comes from the installed ``plotly`` package.
"""

from __future__ import annotations

import functools
import gzip
import html
import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse

from qflow.web.errors import HTTPError
from qflow.web.routes.params import Ctx
from qflow.web.security import CSRF_COOKIE, TOKEN_COOKIE

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent.parent / "static"
APP = STATIC / "app"
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)
PAGES = (
    "/",
    "/runs",
    "/runs/{run_id}",
    "/runs/{run_id}/steps/{step}",
    "/compare",
    "/models",
    "/models/{name}",
    "/predict/{ref:path}",
    "/lineage/{run_id}",
    "/launch",
    "/launch/{workflow}",
    "/sweeps",
    "/sweeps/{sweep_id}",
)
NOT_BUILT = (
    "<!doctype html><title>QFlow</title><h1>The dashboard is not built</h1>"
    "<p>Run <code>npm ci &amp;&amp; npm run build</code> in <code>frontend/</code>, or reinstall "
    "QFlow (<code>pip install -e .</code> builds it when Node is installed).</p>"
)


def _plotly_js() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@functools.cache
def static_files() -> dict[str, Path]:
    """Servable files by URL name: ours, the built app's (``app/...``), and
    ``vendor/plotly.min.js`` from the package."""
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES and p.is_file()}
    if APP.is_dir():
        for path in APP.rglob("*"):
            if path.suffix in _TYPES and path.is_file():
                files["app/" + path.relative_to(APP).as_posix()] = path
    plotly = _plotly_js()
    if plotly is not None:
        files["vendor/plotly.min.js"] = plotly
    return files


@functools.lru_cache(maxsize=64)
def _compressed(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)


@router.get("/static/{name:path}")
def static(name: Annotated[str, PathParam(max_length=200)], request: Request) -> Response:
    path = static_files().get(name)
    if path is None:
        raise HTTPError(404, "not_found", f"No static file {name[:100]!r}.")
    # Built files have content hashes in their names: cached for good.
    immutable = name.startswith("app/assets/")
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable"
        if immutable
        else "public, max-age=3600",
        "Vary": "Accept-Encoding",
    }
    media = _TYPES.get(path.suffix, "application/octet-stream")
    if "gzip" in request.headers.get("accept-encoding", "") and path.suffix != ".woff2":
        headers["Content-Encoding"] = "gzip"
        return Response(_compressed(path), media_type=media, headers=headers)
    return Response(path.read_bytes(), media_type=media, headers=headers)


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


def _shell() -> HTMLResponse:
    index = APP / "index.html"
    body = index.read_bytes() if index.is_file() else NOT_BUILT.encode()
    return HTMLResponse(
        body,
        status_code=200 if index.is_file() else 503,
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )


for _page in PAGES:
    router.get(_page, response_class=HTMLResponse, name=f"page:{_page}")(lambda: _shell())


@router.get("/step-runs/{step_run_id}")
def step_run_page(
    ctx: Ctx, step_run_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)]
) -> RedirectResponse:
    """The page of a step run known by its id (a cached step's source): its run's step page."""
    step = ctx.metadata.step_run_by_id(step_run_id)
    if step is None:
        raise HTTPError(404, "not_found", f"No step run with id {step_run_id}.")
    target = f"/runs/{quote(step.run_id, safe='')}/steps/{quote(step.name, safe='')}"
    return RedirectResponse(target, status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    csrf = html.escape(request.scope.get("state", {}).get("csrf", ""))
    target = html.escape(_safe_next(next))
    page = (STATIC / "login.html").read_text().replace("{{csrf}}", csrf).replace("{{next}}", target)
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=500)],
    csrf_token: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the token and the form's CSRF token (double-submit), then set the cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), csrf_token.encode()):
        raise HTTPError(403, "csrf", "The form is stale (CSRF check failed). Reload /login.")
    expected: str = request.app.state.settings.token
    if not secrets.compare_digest(token.encode(), expected.encode()):
        raise HTTPError(401, "unauthorized", "Wrong token. Hint: qflow ui prints it at start.")
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        secure=bool(request.app.state.settings.secure_cookies),
    )
    return response


def _safe_next(target: str) -> str:
    """Only a path on this server: no scheme, no host, no ``//`` or backslash tricks."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target if all(32 < ord(c) < 127 for c in target) else "/"
