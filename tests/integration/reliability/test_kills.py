"""Issue 17, faults: ``kill -9`` at random moments of a blob write and of a metadata commit.

A process writing 16 MiB blobs one after another, or committing metric batches to SQLite, is
killed at a random offset (seeded, so a failure can be replayed). After each kill: no file at
a content address is incomplete, every blob the process reported written is whole, the
database passes SQLite's integrity check, every batch it reported committed is there, and
batches are all or nothing."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from qflow.store import MetadataStore
from qflow.store.artifacts import ArtifactRef, ArtifactStore

pytestmark = pytest.mark.integration

KILLS = 6
SEED = 17

WRITER = """
import sys

from qflow.store.artifacts import ArtifactStore

store = ArtifactStore(sys.argv[1])
i = int(sys.argv[2])
while True:
    ref = store.put_bytes(bytes([i % 251]) * (16 << 20) + i.to_bytes(8, "big"))
    print(ref.key, flush=True)
    i += 1
"""

COMMITTER = """
import sys

from qflow.store import MetadataStore

store = MetadataStore(sys.argv[1])
run_id = sys.argv[2]
step = store.create_step_run(run_id=run_id, name=sys.argv[3], step="s", position=0, params={})
n = 0
while True:
    store.log_metrics([(run_id, step, "loss", float(n + i), n + i, 0.0) for i in range(500)])
    store.log_params(run_id, {f"p{n}": n}, step_run_id=step)
    n += 500
    print(n, flush=True)
"""


def _kill_after_first_line(args: list[str], rng: random.Random) -> list[str]:
    """Start ``args``, wait for its first acknowledgement, kill -9 it after a random delay;
    return every line it printed (what it acknowledged)."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = [process.stdout.readline().strip()]
    time.sleep(rng.uniform(0.0, 0.4))
    process.kill()
    out, _ = process.communicate(timeout=60)
    return [line for line in [*lines, *out.splitlines()] if line]


def test_kill_9_during_blob_writes_never_leaves_a_partial_blob(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    rng = random.Random(SEED)
    acknowledged: list[str] = []
    for kill in range(KILLS):
        acknowledged += _kill_after_first_line(
            [sys.executable, "-c", WRITER, str(root), str(kill * 1000)], rng
        )
        for blob in root.rglob("*"):
            if blob.is_file() and ".tmp" not in blob.parts:
                assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob
    store = ArtifactStore(str(root))
    size = (16 << 20) + 8
    assert len(acknowledged) >= KILLS
    for key in acknowledged:
        assert store.intact(ArtifactRef(key, "bytes", size, "builtins.bytes", False)), key
    # what a kill leaves is only staging files, which ``qflow gc`` removes after --tmp-age
    leftovers = [p for p in (root / ".tmp").rglob("*") if p.is_file()]
    assert all(p.name.startswith("put-") for p in leftovers), leftovers


def test_kill_9_during_metadata_commits_keeps_every_acknowledged_batch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'qflow.db'}"
    store = MetadataStore(url)
    run = store.create_run(workflow="w", config={})
    rng = random.Random(SEED)
    for kill in range(KILLS):
        lines = _kill_after_first_line(
            [sys.executable, "-c", COMMITTER, url, run.id, f"{kill}_s"], rng
        )
        acknowledged = int(lines[-1])
        assert store.integrity_problems() == []
        [step] = [s for s in store.step_runs(run.id) if s.name == f"{kill}_s"]
        points = store.metrics(run.id, "loss", step_run_id=step.id)
        assert len(points) >= acknowledged  # nothing acknowledged is lost
        assert len(points) % 500 == 0  # a batch is all or nothing
        assert sorted(m.step or 0 for m in points) == list(range(len(points)))
        with store.engine.connect() as conn:
            params = conn.execute(
                sa.text("SELECT count(*) FROM params WHERE step_run_id = :id"), {"id": step.id}
            ).scalar_one()
        assert params >= acknowledged // 500  # each acknowledged batch's param too
    store.dispose()
