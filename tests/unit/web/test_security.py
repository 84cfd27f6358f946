"""Issue #9 item 4: token, host check, CSRF, size limit, traversal, no unpickling of uploads."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qflow.web.app import create_app
from qflow.web.settings import InsecureBindError, Settings
from tests.unit.web.conftest import TOKEN, WebProject, make_settings

# Paths that answer without the token: health, static assets, the login page.
ALLOWED = {"/health", "/login", "/favicon.ico", "/static/{name:path}"}


def _concrete(path: str, run_id: str) -> str:
    values = {"run_id": run_id, "key": "0" * 64, "name": "clf", "version": "1"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


def route_table(app: object) -> list[tuple[str, set[str]]]:
    """(path, methods) of every HTTP route, including those of included routers."""
    table = []
    for route in app.routes:  # type: ignore[attr-defined]
        nested = getattr(route, "effective_candidates", None)
        for item in nested() if callable(nested) else [route]:
            methods = getattr(item, "methods", None)
            if methods is not None:  # mounts and websockets have none; there are none here
                table.append((item.path, set(methods)))
    return table


def test_every_route_needs_the_token_except_the_allow_list(
    anonymous: TestClient, app: object, web_project: WebProject
):
    checked = 0
    for path, methods in route_table(app):
        for method in sorted(methods - {"HEAD"}):
            url = _concrete(path, web_project.runs[0])
            response = anonymous.request(method, url, follow_redirects=False)
            if path in ALLOWED:
                assert response.status_code != 401, (method, path)
            else:
                assert response.status_code == 401, (method, path, response.status_code)
                checked += 1
    assert checked > 50  # the API, the pages, the store endpoints and openapi.json


def test_wrong_token_is_401_and_bearer_token_works(app: object):
    with TestClient(app, headers={"Authorization": "Bearer wrong"}) as wrong:  # type: ignore[arg-type]
        assert wrong.get("/api/runs").status_code == 401
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as right:  # type: ignore[arg-type]
        assert right.get("/api/runs").status_code == 200


def test_unauthenticated_page_points_to_login(anonymous: TestClient):
    page = anonymous.get("/runs", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 401 and "/login" in page.text


def test_token_in_url_logs_in_and_is_removed(anonymous: TestClient):
    response = anonymous.get(f"/runs?token={TOKEN}&filter=x", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/runs?filter=x"
    assert "HttpOnly" in response.headers["set-cookie"]
    assert anonymous.get("/api/runs").status_code == 200  # the cookie now authenticates
    evil = anonymous.get(f"//evil.example/x?token={TOKEN}", follow_redirects=False)
    assert not evil.headers.get("location", "/").startswith("//")


def test_login_form_checks_csrf_then_token(anonymous: TestClient):
    form = anonymous.get("/login")
    csrf = anonymous.cookies["qflow_csrf"]
    assert csrf in form.text
    stale = anonymous.post("/login", data={"token": TOKEN, "csrf_token": "x" * 20})
    assert stale.status_code == 403
    wrong = anonymous.post("/login", data={"token": "nope", "csrf_token": csrf})
    assert wrong.status_code == 401
    ok = anonymous.post(
        "/login",
        data={"token": TOKEN, "csrf_token": csrf, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert anonymous.get("/api/models").status_code == 200


def test_writes_with_the_cookie_need_the_csrf_header(anonymous: TestClient):
    anonymous.get(f"/runs?token={TOKEN}")
    body = {"workflow": "nope", "overrides": []}
    forged = anonymous.post("/api/launch", json=body)
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf"
    wrong = anonymous.post("/api/launch", json=body, headers={"X-CSRF-Token": "y" * 24})
    assert wrong.status_code == 403
    csrf = anonymous.cookies["qflow_csrf"]
    real = anonymous.post("/api/launch", json=body, headers={"X-CSRF-Token": csrf})
    assert real.status_code == 404  # past the CSRF check: no such workflow


@pytest.mark.parametrize(
    "path",
    ["/api/launch", "/api/models/clf/predict", "/api/store/create_run", "/api/store/log_metrics"],
)
def test_write_and_launch_endpoints_need_the_token(anonymous: TestClient, path: str):
    assert anonymous.post(path, json={}).status_code == 401


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""]
)
def test_host_header_must_be_allowed(client: TestClient, host: str):
    response = client.get("/api/runs", headers={"host": host})
    assert response.status_code in (400, 421)
    assert response.json()["error"]["code"] == "host_not_allowed"


def test_allowed_host_names_work(client: TestClient):
    for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1"):
        assert client.get("/health", headers={"host": host}).status_code == 200


def test_default_allowed_hosts_are_loopback_only():
    checked = Settings(store_url="sqlite://", artifacts_url="/tmp/a").checked()
    assert set(checked.allowed_hosts) == {"127.0.0.1", "localhost", "::1"}
    assert checked.token  # a random one is made


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])
def test_binding_beyond_loopback_without_token_is_refused(host: str):
    with pytest.raises(InsecureBindError, match="without a token"):
        Settings(store_url="sqlite://", artifacts_url="/tmp/a", host=host).checked()
    ok = Settings(store_url="sqlite://", artifacts_url="/tmp/a", host=host, token="t" * 20)
    assert ok.checked().token == "t" * 20


def test_oversized_body_gets_413_before_it_is_read(web_project: WebProject):
    app = create_app(make_settings(web_project, max_body_bytes=1000))  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        big = client.post("/api/models/clf/predict", content=b"x\n" + b"1\n" * 2000)
        assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(100):
                yield b"1\n" * 50

        streamed = client.post("/api/models/clf/predict", content=chunks())
        assert streamed.status_code == 413
        claimed = client.post(
            "/api/launch", content=b"{}", headers={"content-length": "999999999999"}
        )
        assert claimed.status_code == 413


TRAVERSALS = [
    "../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2fqflow.db",
    "..%252f..%252fetc%252fpasswd",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "....//....//etc/passwd",
    "..\\..\\etc\\passwd",
    "0" * 64 + "%00.png",
    "%00",
    "0" * 63 + "/",
    "A" * 64,
]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_artifact_paths_never_leave_the_store(
    client: TestClient, web_project: WebProject, bad: str
):
    run_id = web_project.runs[0]
    for url in (
        f"/api/runs/{run_id}/artifacts/{bad}/raw",
        f"/api/runs/{run_id}/artifacts/{bad}/preview",
        f"/static/{bad}",
        f"/static/vendor/{bad}",
    ):
        response = client.get(url)
        assert 400 <= response.status_code < 500, (url, response.status_code)
        assert b"root:" not in response.content


def test_store_refuses_artifact_keys_that_are_paths(client: TestClient, web_project: WebProject):
    ref = {
        "key": "../../etc/passwd",
        "serializer": "file",
        "size": 1,
        "type_name": "x",
        "pickled": False,
    }
    response = client.post(
        "/api/store/log_run_artifact",
        json={"run_id": web_project.runs[0], "name": "x", "ref": ref},
    )
    assert response.status_code == 422


class _Boom:
    """Unpickling this creates a marker file: proof that something unpickled the upload."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_uploads_are_never_unpickled(client: TestClient, tmp_path: Path):
    _Boom.marker = str(tmp_path / "unpickled")
    payload = pickle.dumps(_Boom())
    for content_type in ("text/csv", "application/octet-stream", "application/python-pickle"):
        response = client.post(
            "/api/models/clf@production/predict",
            content=payload,
            headers={"content-type": content_type},
        )
        assert 400 <= response.status_code < 500
    files = {"file": ("model.pkl", payload, "application/octet-stream")}
    assert 400 <= client.post("/api/models/clf/predict", files=files).status_code < 500
    inline = {
        "key": "0" * 64,
        "serializer": "pickle",
        "size": len(payload),
        "type_name": "x",
        "pickled": True,
        "inline": __import__("base64").b64encode(payload).decode(),
    }
    client.post("/api/store/get_artifact", json={"key": "0" * 64})
    client.post("/api/store/log_run_artifact", json={"run_id": "x", "name": "p", "ref": inline})
    assert not (tmp_path / "unpickled").exists()


def test_launch_parameters_never_reach_a_shell(client: TestClient, monkeypatch: pytest.MonkeyPatch):
    import subprocess

    calls: list[tuple[object, dict[str, object]]] = []
    real = subprocess.Popen

    def spy(args: object, **kwargs: object) -> object:
        calls.append((args, kwargs))
        return real(args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "Popen", spy)
    for override in ("steps=1; touch /tmp/x", "--executor=ray", "$(id)", "steps=`id`"):
        response = client.post("/api/launch", json={"workflow": "slow", "overrides": [override]})
        assert response.status_code == 422, override
    assert calls == []
    started = client.post("/api/launch", json={"workflow": "slow", "overrides": ["delay=0.01"]})
    assert started.status_code == 202
    ((args, kwargs),) = calls
    assert isinstance(args, list) and kwargs.get("shell") in (None, False)
    assert args[args.index("--") + 1 :] == ["slow", "delay=0.01"]
