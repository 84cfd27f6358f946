"""Fuzz the API from its own OpenAPI schema (schemathesis + hypothesis): no input gets a 5xx.

Each operation's strategy is driven with hypothesis directly, since schemathesis' pytest
plugin does not load under pytest 9.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from qflow.web.app import create_app  # noqa: E402
from tests.unit.web.conftest import TOKEN, WebProject, make_settings  # noqa: E402

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Host": "testserver"}


def test_api_never_answers_5xx(web_project: WebProject, tmp_path: Path) -> None:
    # A copy of the stores (the fuzzer writes), and no project: the launch endpoints answer
    # 404 instead of starting fuzzed workflows.
    shutil.copytree(web_project.root / ".qflow", tmp_path / ".qflow")
    copy = WebProject(
        tmp_path,
        f"sqlite:///{tmp_path / '.qflow' / 'qflow.db'}",
        str(tmp_path / ".qflow" / "artifacts"),
        web_project.runs,
    )
    app = create_app(make_settings(copy, project_dir=None))  # type: ignore[arg-type]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=HEADERS)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case: object) -> None:
            response = case.call(headers=HEADERS)  # type: ignore[attr-defined]
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300} → "  # type: ignore[attr-defined]
                f"{response.status_code}: {response.text[:500]}"
            )

        call()
