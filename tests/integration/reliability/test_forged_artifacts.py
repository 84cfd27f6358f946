"""Issue 17: the tracking server refuses bytes that do not match their key or size, so a client
cannot plant other bytes under the key of a value a later genuine run produces."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.reliability.conftest import TOKEN, clean_env, write_project

pytestmark = pytest.mark.integration

GENUINE_KEY = hashlib.sha256(b"genuine").hexdigest()


def _ref(key: str, data: bytes | None, size: int) -> dict[str, object]:
    return {
        "key": key,
        "serializer": "bytes",
        "size": size,
        "type_name": "builtins.bytes",
        "pickled": False,
        "inline": None if data is None else base64.b64encode(data).decode(),
    }


def _post(url: str, method: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{url}/api/store/{method}",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )


def _new_run(url: str) -> str:
    response = _post(url, "create_run", {"workflow": "attacker", "config": {}})
    assert response.status_code == 200, response.text
    return str(response.json()["result"]["id"])


def test_forged_inline_bytes_are_refused_and_a_genuine_run_loads_genuine_bytes(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, artifacts = server
    run_id = _new_run(url)
    forged = b"forged!"
    response = _post(
        url,
        "log_run_artifact",
        {"run_id": run_id, "name": "x", "ref": _ref(GENUINE_KEY, forged, len(forged))},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "artifact_mismatch"
    assert GENUINE_KEY[:12] in error["message"]
    assert "hash to" in error["message"]

    # the same bytes with a size that is not theirs, through finish_step_run's outputs
    step = _post(
        url,
        "create_step_runs",
        {
            "run_id": run_id,
            "entries": [{"name": "0_s", "step": "s", "position": 0, "params": {}}],
        },
    ).json()["result"][0]
    response = _post(
        url,
        "finish_step_run",
        {
            "step_run_id": step,
            "outcome": {
                "status": "succeeded",
                "outputs": {"output": _ref(GENUINE_KEY, b"genuine", 99)},
            },
        },
    )
    assert response.status_code == 400
    assert "99" in response.json()["error"]["message"]

    project = write_project(tmp_path / "client")
    script = (
        "import qflow as qf\n"
        "run = qf.run('blobs', project_dir='.')\n"
        "view = qf.Client('.').run(run.id)\n"
        "print(repr(view.step('0_genuine').load()))\n"
    )
    env = clean_env() | {
        "QFLOW_TRACKING_URI": url,
        "QFLOW_TRACKING_TOKEN": TOKEN,
        "QFLOW_ARTIFACTS": str(artifacts),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "b'genuine'"


def test_a_ref_whose_size_differs_from_the_stored_blob_is_refused(
    server: tuple[str, Path],
) -> None:
    url, artifacts = server
    data = b"stored blob bytes"
    key = hashlib.sha256(data).hexdigest()
    blob = artifacts / key[:2] / key[2:4] / key
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    run_id = _new_run(url)
    response = _post(
        url,
        "log_run_artifact",
        {"run_id": run_id, "name": "x", "ref": _ref(key, None, len(data) + 1)},
    )
    assert response.status_code == 400
    assert "stored blob has 17" in response.json()["error"]["message"]
    response = _post(
        url, "log_run_artifact", {"run_id": run_id, "name": "x", "ref": _ref(key, None, len(data))}
    )
    assert response.status_code == 200, response.text
