"""Issue 17: a lost connection is not fatal. On PostgreSQL, the backend doing a metric flush is
terminated (``pg_terminate_backend``) several times during a run: the step succeeds and every
metric is stored exactly once. A tracking server killed and restarted during a run: the client
run succeeds, with every metric exactly once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import qflow as qf
from qflow.store.metadata.records import StepOutcome, StepStatus
from tests.integration.reliability.conftest import (
    TOKEN,
    assert_doctor_clean,
    clean_env,
    free_port,
    start_server,
    write_project,
)

pytestmark = pytest.mark.integration

POINTS = 300

WORKFLOWS = f"""
import time

import qflow as qf


@qf.step
def train(delay: float) -> int:
    for i in range({POINTS}):
        qf.log_metric("loss", 1.0 / (i + 1), step=i)
        time.sleep(delay)
    return {POINTS}


@qf.workflow
def live(cfg):
    return train(cfg.delay)
"""

TERMINATE_WAITING_FLUSH = """
select pg_terminate_backend(pid) from pg_stat_activity
where datname = current_database() and pid <> pg_backend_pid()
  and query ilike 'copy metrics%' and wait_event_type = 'Lock'
"""


def _terminator(url: str, locked: threading.Event, kills: list[int]) -> None:
    """Lock the metrics table against writes, wait for a flush to block on it, terminate that
    backend (a connection lost mid-transaction), and release the lock."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("begin")
        admin.execute("lock table metrics in exclusive mode")
        locked.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            admin.execute("select pg_stat_clear_snapshot()")
            killed = admin.execute(TERMINATE_WAITING_FLUSH).fetchall()
            if killed:
                kills.append(len(killed))
                break
            time.sleep(0.01)
        admin.execute("commit")


@pytest.mark.postgres
def test_metric_flushes_survive_terminated_postgres_connections(
    project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(project, WORKFLOWS, module="livewf")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("QFLOW_STORE", postgres_url)
    qf.run("live", overrides=["+delay=0.0"], project_dir=project)  # creates the schema
    kills: list[int] = []
    locked = threading.Event()
    thread = threading.Thread(target=_terminator, args=(postgres_url, locked, kills))
    thread.start()
    try:
        assert locked.wait(30)
        # no delay: the step ends before the clock's first flush, so the step's closing
        # flush is the one that blocks on the lock and loses its connection
        run = qf.run("live", overrides=["+delay=0.000001"], project_dir=project)
    finally:
        thread.join(timeout=90)
    assert kills == [1]
    view = qf.Client(project).run(run.id)
    assert view.status == "succeeded"
    assert [s.status for s in view.steps] == ["succeeded"]
    history = view.metric_history("loss")
    assert [m.step for m in history] == list(range(POINTS))
    assert [m.value for m in history] == [1.0 / (i + 1) for i in range(POINTS)]


STEPS = 12

CHAIN_WORKFLOWS = f"""
import time

import qflow as qf


@qf.step
def stage(previous: int, index: int) -> int:
    qf.log_param("index", index)
    qf.set_tag(f"stage{{index}}", "done")
    for i in range(20):
        qf.log_metric("loss", float(index * 100 + i), step=i)
    time.sleep(0.2)
    return previous + index


@qf.workflow
def chain(cfg):
    total = 0
    for index in range({STEPS}):
        total = stage(total, index)
    return total
"""

# Each target: a table to lock, so that the next store call writing it (or a row referencing
# it) waits and is terminated mid-statement.
TARGETS = ("step_runs", "params", "tags", "runs", "step_io", "metrics")

TERMINATE_WAITING = """
select pid, query from pg_stat_activity
where datname = current_database() and pid <> pg_backend_pid() and wait_event_type = 'Lock'
"""


def _terminate_every_kind(url: str, done: threading.Event, killed: list[tuple[str, str]]) -> None:
    """Round after round over TARGETS: lock the table, wait for a store call to block on it,
    terminate that backend, release; until the run is done."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        while not done.is_set():
            for table in TARGETS:
                admin.execute("begin")
                admin.execute(f"lock table {table} in exclusive mode")
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not done.is_set():
                    admin.execute("select pg_stat_clear_snapshot()")
                    waiting = admin.execute(TERMINATE_WAITING).fetchall()
                    for pid, query in waiting:
                        admin.execute("select pg_terminate_backend(%s)", (pid,))
                        killed.append((table, " ".join(str(query).split())[:60]))
                    if waiting:
                        break
                    time.sleep(0.005)
                admin.execute("commit")


@pytest.mark.postgres
def test_a_run_survives_connections_terminated_during_every_kind_of_store_call(
    project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting and finishing step runs, params, tags, lineage, heartbeats and the run's end:
    each call whose backend is terminated mid-statement is made again, and nothing is stored
    twice."""
    write_project(project, CHAIN_WORKFLOWS, module="chainwf")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("QFLOW_STORE", postgres_url)
    from qflow.store import MetadataStore

    MetadataStore(postgres_url).dispose()  # the schema exists before tables are locked
    killed: list[tuple[str, str]] = []
    done = threading.Event()
    thread = threading.Thread(target=_terminate_every_kind, args=(postgres_url, done, killed))
    thread.start()
    try:
        run = qf.run("chain", project_dir=project)
    finally:
        done.set()
        thread.join(timeout=60)
    assert {table for table, _ in killed} == set(TARGETS), killed
    view = qf.Client(project).run(run.id)
    assert view.status == "succeeded"
    assert [s.status for s in view.steps] == ["succeeded"] * STEPS
    assert view.steps[-1].load() == sum(range(STEPS))
    store = MetadataStore(postgres_url)
    try:
        with store.engine.connect() as conn:
            import sqlalchemy as sa

            def count(table: str) -> int:
                return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())

            assert count("runs") == 1
            assert count("step_runs") == STEPS
            assert count("params") == STEPS
            assert count("tags") >= STEPS
            assert count("metrics") == STEPS * 20
            assert count("step_io") == 2 * STEPS - 1  # an output each, an input after the first
        assert sorted(m.value for m in store.metrics(run.id, "loss")) == sorted(
            float(index * 100 + i) for index in range(STEPS) for i in range(20)
        )
    finally:
        store.dispose()
    assert_doctor_clean(project)


def test_a_client_run_survives_a_tracking_server_restart(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'server.db'}"
    artifacts = tmp_path / "artifacts"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(store_url, artifacts, port)
    project = write_project(tmp_path / "client", WORKFLOWS, module="livewf")
    env = clean_env() | {
        "QFLOW_TRACKING_URI": url,
        "QFLOW_TRACKING_TOKEN": TOKEN,
        "QFLOW_ARTIFACTS": str(artifacts),
    }
    script = (
        "import qflow as qf\nprint(qf.run('live', overrides=['+delay=0.02'], project_dir='.').id)\n"
    )
    client = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        assert client.poll() is None, client.communicate()
        server.kill()
        server.wait(timeout=30)
        time.sleep(2)
        server = start_server(store_url, artifacts, port)
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err
        run_id = out.strip().splitlines()[-1]
    finally:
        client.kill()
        server.terminate()
        server.wait(timeout=30)

    from qflow.store import MetadataStore

    store = MetadataStore(store_url)
    assert store.get_run(run_id).status == "succeeded"
    assert [s.status for s in store.step_runs(run_id)] == ["succeeded"]
    history = store.metrics(run_id, "loss")
    assert [m.step for m in history] == list(range(POINTS))
    store.dispose()


WAIT_AT_COMMIT = """
create function qflow_wait_at_commit() returns trigger language plpgsql as $$
begin perform pg_advisory_xact_lock_shared(4242); return null; end $$;
create constraint trigger wait_at_commit after insert or update on step_runs
  deferrable initially deferred for each row execute function qflow_wait_at_commit();
create constraint trigger wait_at_commit after insert or update on tags
  deferrable initially deferred for each row execute function qflow_wait_at_commit();
"""


def _kill_one(url: str, hold: str, release: str, query: str, ready: threading.Event) -> None:
    """Hold a lock, terminate the first backend waiting on it whose query starts with
    ``query``, then release it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(hold)
        ready.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            admin.execute("select pg_stat_clear_snapshot()")
            found = admin.execute(
                "select pid from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock' and query ilike %s",
                (query + "%",),
            ).fetchall()
            if found:
                admin.execute("select pg_terminate_backend(%s)", (found[0][0],))
                break
            time.sleep(0.005)
        admin.execute(release)


@pytest.mark.postgres
def test_a_call_killed_during_commit_is_retried_only_if_idempotent(postgres_url: str) -> None:
    """Killed while its COMMIT waits (a deferred trigger blocks on a lock), a call cannot know
    whether its transaction was recorded: an idempotent one (``set_tags``, ``finish_step_run``)
    is made again; one inserting new rows (``create_step_runs``) fails with one line rather
    than risk recording twice. Killed before COMMIT, it is made again."""
    import psycopg

    from qflow.errors import StoreError
    from qflow.store import MetadataStore

    store = MetadataStore(postgres_url)
    run = store.create_run(workflow="w", config={}, run_id="r" * 26)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(WAIT_AT_COMMIT)

    def killed_once(hold: str, release: str, query: str) -> threading.Thread:
        ready = threading.Event()
        thread = threading.Thread(
            target=_kill_one, args=(postgres_url, hold, release, query, ready)
        )
        thread.start()
        assert ready.wait(30)
        return thread

    def count(table: str) -> int:
        with psycopg.connect(postgres_url) as conn:
            found = conn.execute(f"select count(*) from {table}").fetchone()
            return int(found[0]) if found else -1

    commit = ("select pg_advisory_lock(4242)", "select pg_advisory_unlock(4242)", "commit")
    entry = {"name": "0_s", "step": "s", "position": 0, "params": {}}
    try:
        thread = killed_once(*commit)
        with pytest.raises(StoreError, match=r"metadata store at .* failed"):
            store.create_step_runs(run.id, [entry])
        thread.join()
        assert count("step_runs") == 0

        thread = killed_once(*commit)
        store.set_tags(run.id, {"k": "v"})
        thread.join()
        assert count("tags") == 1

        lock = ("begin; lock table step_runs in exclusive mode", "commit", "insert into step_runs")
        thread = killed_once(*lock)
        [step_run] = store.create_step_runs(run.id, [entry])
        thread.join()
        assert count("step_runs") == 1

        thread = killed_once(*commit)
        store.finish_step_run(step_run, StepOutcome(StepStatus.SUCCEEDED))
        thread.join()
        assert [s.status for s in store.step_runs(run.id)] == ["succeeded"]
        assert store.get_run(run.id).tags == {"k": "v"}
    finally:
        store.dispose()
