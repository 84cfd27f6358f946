"""A running step's output so far, written while it runs so ``qflow logs`` and the dashboard
show it live."""

from __future__ import annotations

import sqlalchemy as sa

from qflow.store.metadata import schema as t
from qflow.store.metadata.database import Database, translated
from qflow.store.metadata.records import StepStatus


class OutputQueries(Database):
    """Live output of running step runs."""

    @translated
    def record_step_output(self, step_run_id: int, stdout: str, stderr: str) -> None:
        """Replace a running step run's stdout and stderr with what it printed so far.

        Only a step run still ``running`` is changed: the output ``finish_step_run`` stores
        is final, and a late or re-sent update never overwrites it."""
        runs = t.step_runs
        update = (
            sa.update(runs)
            .where(runs.c.id == step_run_id, runs.c.status == str(StepStatus.RUNNING))
            .values(stdout=stdout, stderr=stderr)
        )
        with self.engine.begin() as conn:
            conn.execute(update)
