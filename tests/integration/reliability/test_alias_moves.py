"""Issue 17: concurrent registrations and alias moves, on SQLite and on PostgreSQL.

8 processes register a version of one new model at once (get-or-create of the model, next
version number): versions 1..8, one each. Then they move one alias at once: none fails, the
alias ends where the last recorded move put it, and the history is one chain (each move starts
where the previous ended).
"""

from __future__ import annotations

import itertools
import multiprocessing
from pathlib import Path

import pytest

from tests.integration.reliability.conftest import write_project

pytestmark = pytest.mark.integration

PROCESSES = 8
MOVES = 6
VERSIONS = 8

WORKFLOWS = """
import qflow as qf


@qf.step
def fit(c: float) -> dict:
    return {"c": c}


@qf.workflow
def train(cfg):
    return fit(cfg.c)
"""


def _move(
    project: str, store_url: str | None, index: int, start: object, run_id: str
) -> tuple[int, list[int]]:
    import os

    if store_url:
        os.environ["QFLOW_STORE"] = store_url
    from qflow.registry import QFlowRegistry

    registry = QFlowRegistry.for_project(project)
    start.wait()  # type: ignore[attr-defined]
    registered = registry.register(run_id, "fit", name="raced").version
    start.wait()  # type: ignore[attr-defined]
    moved = []
    for move in range(MOVES):
        version = (index + move) % VERSIONS + 1
        registry.set_alias("m", "production", version)
        moved.append(version)
    return registered, moved


def _concurrent_moves(project: Path, store_url: str | None) -> None:
    import qflow as qf
    from qflow.registry import QFlowRegistry

    run = qf.run("train", overrides=["+c=1.0"], project_dir=project)
    registry = QFlowRegistry.for_project(project)
    for _ in range(VERSIONS):
        registry.register(run.id, "fit", name="m")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(PROCESSES)
        with context.Pool(PROCESSES) as pool:
            results = pool.starmap(
                _move, [(str(project), store_url, i, start, run.id) for i in range(PROCESSES)]
            )
    registered = sorted(r for r, _ in results)
    assert registered == list(range(1, PROCESSES + 1))
    assert [v.version for v in registry.versions("raced")] == registered
    moved = [m for _, m in results]
    assert sum(len(m) for m in moved) == PROCESSES * MOVES

    history = registry.alias_history("m", "production")
    assert len(history) == PROCESSES * MOVES
    assert history[0].previous_version is None
    for before, after in itertools.pairwise(history):
        assert after.previous_version == before.version, [
            (h.previous_version, h.version) for h in history
        ]
    assert registry.get("m@production").version == history[-1].version
    assert sorted(h.version or 0 for h in history) == sorted(v for m in moved for v in m)


def test_eight_processes_move_one_alias_on_sqlite(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(project, WORKFLOWS, module="aliaswf")
    monkeypatch.syspath_prepend(str(project))
    _concurrent_moves(project, None)


@pytest.mark.postgres
def test_eight_processes_move_one_alias_on_postgres(
    project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(project, WORKFLOWS, module="aliaswf")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("QFLOW_STORE", postgres_url)
    _concurrent_moves(project, postgres_url)
