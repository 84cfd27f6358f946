"""Queries on step runs."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from qflow.errors import (
    InvalidValueError,
    StepNotFoundError,
    did_you_mean,
)
from qflow.store.artifacts import ArtifactRef
from qflow.store.metadata import schema as t
from qflow.store.metadata import statements as st
from qflow.store.metadata.database import Database, Retry, translated
from qflow.store.metadata.records import (
    OPEN,
    DataFileRecord,
    StepOutcome,
    StepRun,
    StepStart,
    StepStatus,
)
from qflow.store.metadata.rows import (
    artifact_row,
    dumps,
    execute_many,
    insert_ignore,
    ref_from_row,
    use_row,
)


class StepQueries(Database):
    """Step runs: their lifecycle, lineage, cache lookups and data files."""

    @translated(retry=Retry.UNCOMMITTED)  # inserts a new row each time
    def create_step_run(
        self,
        *,
        run_id: str,
        name: str,
        step: str,
        position: int,
        params: dict[str, Any],
        cache_key: str | None = None,
        status: str = "pending",
        source: str | None = None,
    ) -> int:
        """Record a step run; ``source`` (the step's code) is stored once per distinct text.
        Idempotent: a step run already recorded under ``name`` in ``run_id`` keeps its id."""
        source_key = self._save_source(source) if source is not None else None
        with self.engine.begin() as conn:
            known = _recorded(conn, run_id, [name])
            if known:
                return known[name]
            step_run_id = conn.execute(
                t.step_runs.insert()
                .values(
                    run_id=run_id,
                    name=name,
                    step=step,
                    position=position,
                    status=status,
                    cache_key=cache_key,
                    params=dumps(params),
                    source_key=source_key,
                )
                .returning(t.step_runs.c.id)
            ).scalar_one()
            return int(step_run_id)

    @translated(retry=Retry.UNCOMMITTED)  # inserts new rows each time
    def create_step_runs(self, run_id: str, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        """Record many pending step runs in one transaction; ids come back in entry order.

        Each entry has ``name``, ``step``, ``position``, ``params`` and optionally ``source``
        (the step's code, stored once per distinct text).

        Idempotent: a batch whose names are all recorded in ``run_id`` already (a request
        re-sent after its answer was lost) returns their ids; one batch is one transaction,
        so a batch is either all recorded or not at all.
        """
        if not entries:
            return []
        names = [str(e["name"]) for e in entries]
        rows = [
            {
                "run_id": run_id,
                "name": e["name"],
                "step": e["step"],
                "position": e["position"],
                "status": StepStatus.PENDING,
                "params": dumps(e["params"]),
                "source_key": self._save_source(e["source"]) if e.get("source") else None,
            }
            for e in entries
        ]
        with self.engine.begin() as conn:
            known = _recorded(conn, run_id, names)
            if known and set(known) == set(names):
                return [known[n] for n in names]
            if known:
                raise InvalidValueError(
                    f"Step runs {sorted(known)[:5]} are already recorded in run {run_id!r}. "
                    "Hint: each step run's name is unique within its run."
                )
            # One executemany, then the ids by name: an INSERT … RETURNING that keeps the
            # rows' order runs one statement per row on SQLite.
            execute_many(conn, st.INSERT_STEP_RUN, rows)
            created = _recorded(conn, run_id, names)
        return [created[n] for n in names]

    @translated
    def start_step_run(
        self,
        step_run_id: int,
        *,
        cache_key: str | None = None,
        fingerprint: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Mark a step run as running, recording what is known only now: its cache key, code
        fingerprint and why it runs."""
        with self.engine.begin() as conn:
            _start(conn, [StepStart(step_run_id, cache_key, fingerprint, reason)])

    @translated
    def finish_step_run(self, step_run_id: int, outcome: StepOutcome) -> None:
        """Record the outcome and the step's lineage (artifacts read and written) atomically.

        Only an open (pending or running) step run is finished; a later call for a step run
        that already ended changes nothing, so terminal statuses never move.

        Times default to now; executors that ran the step elsewhere pass their own. A step
        served from the cache passes ``copy_records_from`` (its source step run) to take over
        the metrics, params and files that run logged, in the same transaction.
        """
        with self.engine.begin() as conn:
            _finish(conn, [(step_run_id, outcome)])

    @translated
    def record_step_runs(
        self,
        started: Sequence[StepStart] = (),
        finished: Sequence[tuple[int, StepOutcome]] = (),
    ) -> None:
        """``start_step_run`` and ``finish_step_run`` for many step runs in one transaction
        (starts first): the coordinator records thousands of mapped items in a few writes."""
        with self.engine.begin() as conn:
            _start(conn, started)
            _finish(conn, finished)

    @translated
    def step_runs(self, run_id: str) -> list[StepRun]:
        """A run's step runs in graph order, with their inputs and outputs."""
        query = sa.select(t.step_runs).where(t.step_runs.c.run_id == run_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.step_runs.c.position, t.step_runs.c.id)).all()
            return self._step_runs(conn, rows)

    @translated
    def step_run_by_id(self, step_run_id: int) -> StepRun | None:
        """A step run by its numeric id, or None."""
        query = sa.select(t.step_runs).where(t.step_runs.c.id == step_run_id)
        with self.engine.connect() as conn:
            found = self._step_runs(conn, conn.execute(query).all())
        return found[0] if found else None

    @translated
    def get_step_run(self, run_id: str, name: str) -> StepRun:
        """A step run by its name in the run ("3_fit") or by step name when only one ran."""
        steps = self.step_runs(run_id)
        for step_run in steps:
            if step_run.name == name:
                return step_run
        matches = [s for s in steps if s.step == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise StepNotFoundError(
                f"Step {name!r} ran {len(matches)} times in run {run_id!r}: "
                f"{', '.join(s.name for s in matches)}. Hint: pass one of these names."
            )
        known = [s.name for s in steps] + sorted({s.step for s in steps})
        raise StepNotFoundError(f"Run {run_id!r} has no step {name!r}.{did_you_mean(name, known)}")

    @translated
    def close_step_runs(self, run_id: str, status: str, error: str) -> None:
        """End every step run of ``run_id`` still pending or running (an interrupted run)."""
        with self.engine.begin() as conn:
            conn.execute(
                t.step_runs.update()
                .where(
                    t.step_runs.c.run_id == run_id,
                    t.step_runs.c.status.in_(OPEN),
                )
                .values(status=status, error=error, ended_at=time.time())
            )

    @translated
    def previous_step_run(self, workflow: str, name: str, before_run: str) -> StepRun | None:
        """The latest finished run of step call ``name`` in an earlier run of ``workflow``:
        what a cache miss is compared against to say what changed."""
        return self.previous_step_runs(workflow, [name], before_run).get(name)

    @translated
    def previous_step_runs(
        self, workflow: str, names: Sequence[str], before_run: str
    ) -> dict[str, StepRun]:
        """``previous_step_run`` for many step calls, by name (those with none left out), in
        two queries per ``IN_CHUNK`` names: a mapped step's misses are explained together."""
        values = {"workflow": workflow, "before_run": before_run}
        found = self._latest(st.PREVIOUS_STEP_RUNS, values, "names", names)
        return {step_run.name: step_run for step_run in found}

    @translated(retry=Retry.UNCOMMITTED)  # inserts new rows each time
    def record_data_files(self, step_run_id: int, files: Sequence[DataFileRecord]) -> None:
        """Remember the data files (path and hash) a step run read; a file recorded already
        for this step run (same name, path, hash and size) is not recorded twice."""
        if not files:
            return
        c = t.data_files.c
        query = sa.select(c.name, c.path, c.sha256, c.size).where(c.step_run_id == step_run_id)
        with self.engine.begin() as conn:
            seen = {(r.name, r.path, r.sha256, int(r.size)) for r in conn.execute(query)}
            rows = []
            for f in files:
                if (f.name, f.path, f.sha256, f.size) not in seen:
                    seen.add((f.name, f.path, f.sha256, f.size))
                    rows.append(
                        {
                            "step_run_id": step_run_id,
                            "name": f.name,
                            "path": f.path,
                            "sha256": f.sha256,
                            "size": f.size,
                        }
                    )
            if rows:
                conn.execute(t.data_files.insert(), rows)

    @translated
    def data_files(self, run_id: str, step_run_id: int | None = None) -> list[DataFileRecord]:
        """Data files read by a run's steps (or by one step run), in step order."""
        query = (
            sa.select(t.data_files, t.step_runs.c.name.label("step_name"))
            .join(t.step_runs, t.step_runs.c.id == t.data_files.c.step_run_id)
            .where(t.step_runs.c.run_id == run_id)
            .order_by(t.step_runs.c.position, t.data_files.c.id)
        )
        if step_run_id is not None:
            query = query.where(t.data_files.c.step_run_id == step_run_id)
        with self.engine.connect() as conn:
            return [
                DataFileRecord(r.name, r.path, r.sha256, int(r.size), r.step_run_id, r.step_name)
                for r in conn.execute(query)
            ]

    @translated
    def data_files_of(self, step_run_ids: Sequence[int]) -> list[DataFileRecord]:
        """The data files of these step runs, by step run, in the order they were recorded
        (500 step runs per query)."""
        ids = list(dict.fromkeys(step_run_ids))
        found: list[DataFileRecord] = []
        with self.engine.connect() as conn:
            for begin in range(0, len(ids), 500):
                rows = conn.execute(st.DATA_FILES_OF, {"ids": ids[begin : begin + 500]})
                found.extend(
                    DataFileRecord(
                        r.name, r.path, r.sha256, int(r.size), r.step_run_id, r.step_name
                    )
                    for r in rows
                )
        return found

    @translated
    def find_cached(self, cache_key: str) -> StepRun | None:
        """The latest succeeded step run with this cache key whose outputs are all recorded."""
        return self.find_cached_many([cache_key]).get(cache_key)

    @translated
    def find_cached_many(self, cache_keys: Sequence[str]) -> dict[str, StepRun]:
        """``find_cached`` for many cache keys, by key (misses left out), in two queries per
        ``IN_CHUNK`` keys: a mapped step's items are looked up together."""
        found = self._latest(st.FIND_CACHED, {}, "cache_keys", cache_keys)
        return {str(step_run.cache_key): step_run for step_run in found}

    def _latest(
        self, query: sa.Select[Any], values: Mapping[str, Any], within: str, wanted: Sequence[str]
    ) -> list[StepRun]:
        """The step runs ``query`` finds for the distinct ``wanted`` values, given to it as the
        list parameter ``within`` ``IN_CHUNK`` at a time, with their inputs and outputs."""
        unique = list(dict.fromkeys(wanted))
        if not unique:
            return []
        found: list[StepRun] = []
        with self.engine.connect() as conn:
            for start in range(0, len(unique), st.IN_CHUNK):
                chunk = unique[start : start + st.IN_CHUNK]
                rows = conn.execute(query, {**values, within: chunk}).all()
                found += self._step_runs(conn, rows)
        return found

    def _step_runs(self, conn: Connection, rows: Sequence[Any]) -> list[StepRun]:
        if not rows:
            return []
        io: dict[int, dict[str, dict[str, ArtifactRef]]] = {
            r.id: {"in": {}, "out": {}} for r in rows
        }
        for use in conn.execute(st.STEP_IO, {"ids": list(io)}).all():
            io[use.step_run_id][use.direction][use.name] = ref_from_row(use)
        columns = rows[0]._fields
        step_runs = []
        for row in rows:
            fields: dict[str, Any] = dict(zip(columns, row, strict=True))
            fields.update(
                params=json.loads(row.params), inputs=io[row.id]["in"], outputs=io[row.id]["out"]
            )
            step_runs.append(StepRun(**fields))
        return step_runs

    def _save_source(self, source: str) -> str:
        """Keep ``source`` as an inline bytes artifact keyed by its sha256; once per process."""
        return self.save_sources([source])[0]

    @translated
    def save_sources(self, texts: Sequence[str]) -> list[str]:
        """Keep texts (step code, the code a step reaches and its fingerprint's manifest) as
        inline bytes artifacts keyed by their sha256, in one transaction; ``source(key)``
        reads one back. Each text is written once per process."""
        known: set[str] = self.__dict__.setdefault("_sources", set())
        keys, rows = [], []
        now = time.time()
        for text in texts:
            data = text.encode()
            key = hashlib.sha256(data).hexdigest()
            keys.append(key)
            if key not in known:
                ref = ArtifactRef(key, "bytes", len(data), "builtins.str", False, data)
                rows.append(artifact_row(ref, now))
        if rows:
            with self.engine.begin() as conn:
                insert_ignore(conn, t.artifacts, rows)
        known.update(keys)  # only once stored: a failed attempt is written again on retry
        return keys

    @translated
    def source(self, key: str) -> str | None:
        """A step source saved by ``create_step_run(source=...)``, or None if unknown."""
        query = sa.select(t.artifacts.c.data).where(t.artifacts.c.key == key)
        with self.engine.connect() as conn:
            data = conn.execute(query).scalar()
        return None if data is None else bytes(data).decode()


def _recorded(conn: Connection, run_id: str, names: Sequence[str]) -> dict[str, int]:
    """The ids of the step runs of ``run_id`` with these names, by name."""
    c = t.step_runs.c
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(names))
    for start in range(0, len(unique), st.IN_CHUNK):
        query = sa.select(c.name, c.id).where(
            c.run_id == run_id, c.name.in_(unique[start : start + st.IN_CHUNK])
        )
        found.update((name, int(i)) for name, i in conn.execute(query).all())
    return found


def _start(conn: Connection, started: Sequence[StepStart]) -> None:
    if not started:
        return
    now = time.time()
    execute_many(
        conn,
        st.START_STEP_RUNS,
        [
            {
                "_id": s.step_run_id,
                "new_started_at": s.started_at if s.started_at is not None else now,
                "new_cache_key": s.cache_key,
                "new_fingerprint": s.fingerprint,
                "new_reason": s.reason,
            }
            for s in started
        ],
    )


def _finish(conn: Connection, finished: Sequence[tuple[int, StepOutcome]]) -> None:
    """Finish the step runs still open, with their lineage and, for cache hits, the records
    they take over; the first outcome given for a step run stands."""
    if not finished:
        return
    open_runs: dict[int, str] = {}
    ids = list(dict.fromkeys(i for i, _ in finished))
    for begin in range(0, len(ids), st.IN_CHUNK):
        rows = conn.execute(st.OPEN_STEP_RUNS, {"ids": ids[begin : begin + st.IN_CHUNK]}).all()
        open_runs.update((int(i), run_id) for i, run_id in rows)
    now = time.time()
    updates: list[dict[str, Any]] = []
    artifacts: dict[str, dict[str, Any]] = {}
    io: list[dict[str, Any]] = []
    copies: list[dict[str, Any]] = []
    for step_run_id, outcome in finished:
        run_id = open_runs.pop(step_run_id, None)
        if run_id is None:  # already finished (or unknown, or given twice)
            continue
        updates.append(
            {
                "_id": step_run_id,
                "new_status": str(outcome.status),
                "new_error": outcome.error,
                "new_traceback": outcome.traceback,
                "new_stdout": outcome.stdout,
                "new_stderr": outcome.stderr,
                "new_attempts": outcome.attempts,
                "new_cached_from": outcome.cached_from,
                "new_ended_at": outcome.ended_at if outcome.ended_at is not None else now,
                "new_started_at": outcome.started_at,
                "new_cache_key": outcome.cache_key,
                "new_fingerprint": outcome.fingerprint,
                "new_reason": outcome.reason,
            }
        )
        for direction, refs in (("in", outcome.inputs), ("out", outcome.outputs)):
            for name, ref in refs.items():
                if ref.key not in artifacts:
                    artifacts[ref.key] = artifact_row(ref, now)
                io.append(
                    {
                        "step_run_id": step_run_id,
                        "direction": direction,
                        "name": name,
                        "artifact_key": ref.key,
                        **use_row(ref),
                    }
                )
        if outcome.copy_records_from is not None:
            copies.append(
                {"run_id": run_id, "step_run_id": step_run_id, "source": outcome.copy_records_from}
            )
    if not updates:
        return
    execute_many(conn, st.FINISH_STEP_RUNS, updates)
    insert_ignore(conn, t.artifacts, artifacts.values())
    insert_ignore(conn, t.step_io, io)
    if copies:
        for statement in st.COPY_STEP_RECORDS:
            conn.execute(statement, copies)
