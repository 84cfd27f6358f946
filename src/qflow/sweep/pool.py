"""A pool of persistent trial processes for ``qflow sweep --parallel N``.

Starting a Python interpreter and importing QFlow, Optuna and the project for every trial
cost seconds of CPU per trial. A pool worker (``python -m qflow.sweep.pool FD``) pays that
once, while it waits for its first trial: given the sweep (``WarmUp``, the first line on its
stdin), it opens the study, imports the workflow, composes its config and opens the stores.
Then it reads the path of a trial spec per line on stdin, runs the trial exactly as
``python -m qflow.sweep.trial`` does (its own main thread, so signals and timeouts work as in
``qflow run``; output to the trial's log; the outcome to the spec's result file), and then
writes ``done`` to the pipe ``FD``. EOF on that pipe means the worker died.

Stopping is unchanged: the driver SIGTERMs the worker running a trial, whose run then ends
``killed``; a worker whose trial was interrupted exits instead of taking another one. Workers
have a process group of their own (the terminal's Ctrl-C reaches only the driver) and end
with the driver, even when it is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

DONE = b"done\n"


@dataclass
class PoolWorker:
    """One persistent trial process and the driver's ends of its pipes."""

    process: subprocess.Popen[bytes]
    commands: IO[bytes]
    replies: int
    """The driver's read end of the worker's reply pipe (a file descriptor)."""
    buffer: bytes = b""

    def start(self, spec_file: Path) -> None:
        self.send(str(spec_file))

    def send(self, line: str) -> None:
        self.commands.write(f"{line}\n".encode())
        self.commands.flush()

    def finished(self) -> bool:
        """Read what the worker replied; True once its trial ended (or it died)."""
        try:
            data = os.read(self.replies, 4096)
        except BlockingIOError:
            return False
        if not data:  # EOF: the worker is gone
            self.process.wait()
            return True
        self.buffer += data
        if DONE in self.buffer:
            self.buffer = self.buffer.split(DONE, 1)[1]
            return True
        return False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.commands.close()
        with contextlib.suppress(OSError):
            os.close(self.replies)


@dataclass(frozen=True)
class WarmUp:
    """What a new worker prepares before its first trial: what every trial of the sweep
    opens, imports or composes the first time, and keeps for the next."""

    project: str
    workflow: str
    overrides: list[str]
    """The sweep's own overrides, without a trial's values."""
    store_url: str
    sweep_id: str
    pruner: str


@dataclass
class TrialPool:
    """Idle workers, started ahead so a trial never waits for an interpreter to start."""

    cwd: Path
    log: Path
    warm_up: WarmUp
    idle: list[PoolWorker] = field(default_factory=list)
    busy: list[PoolWorker] = field(default_factory=list)

    def prestart(self, count: int) -> None:
        while len(self.idle) + len(self.busy) < count:
            self.idle.append(self._spawn())

    def acquire(self) -> PoolWorker:
        while self.idle:
            worker = self.idle.pop()
            if worker.alive:
                self.busy.append(worker)
                return worker
            worker.close()
        worker = self._spawn()
        self.busy.append(worker)
        return worker

    def release(self, worker: PoolWorker) -> None:
        """Back to idle if it is still alive, else forgotten."""
        self.busy.remove(worker)
        if worker.alive:
            self.idle.append(worker)
        else:
            worker.close()

    def close(self) -> None:
        """End the idle workers (EOF on their stdin) and wait for them."""
        for worker in self.idle:
            worker.close()
        for worker in self.idle:
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.idle.clear()

    def _spawn(self) -> PoolWorker:
        read, write = os.pipe()
        os.set_blocking(read, False)
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "qflow.sweep.pool", str(write)],
                cwd=self.cwd,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write,),
                process_group=0,  # the terminal's Ctrl-C goes to the driver, which stops trials
            )
        os.close(write)
        if process.stdin is None:  # pragma: no cover - stdin=PIPE always gives one
            raise OSError("the trial worker has no stdin")
        worker = PoolWorker(process, process.stdin, read)
        with contextlib.suppress(OSError):  # died at once: seen when it is given a trial
            worker.send(json.dumps(asdict(self.warm_up)))
        return worker


def wait_any(workers: Iterable[PoolWorker], timeout: float | None = None) -> list[PoolWorker]:
    """The workers whose trial ended, waiting until at least one did (or ``timeout``)."""
    workers = list(workers)
    ready, _, _ = select.select([w.replies for w in workers], [], [], timeout)
    return [w for w in workers if w.replies in ready and w.finished()]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a pool worker: ``python -m qflow.sweep.pool REPLY_FD``."""
    from qflow.runtime.lifeline import end_with_parent
    from qflow.sweep import trial as trials

    end_with_parent(os.getppid(), orderly=True)  # a killed sweep leaves no worker behind
    args = list(sys.argv[1:] if argv is None else argv)
    replies = int(args[0])
    first = sys.stdin.readline()  # the sweep's WarmUp, as JSON; then a spec file per line
    if not first:
        return 0
    _preload(WarmUp(**json.loads(first)))
    for line in sys.stdin:
        if not line.strip():
            continue
        outcome = _one_trial(Path(line.strip()), trials)
        os.write(replies, DONE)
        if outcome == "interrupted":  # stopped by the driver: it is ending the sweep
            break
    return 0


def _preload(warm_up: WarmUp) -> None:
    """Do, before the first trial arrives, what every trial would do the first time; the
    caches filled here (the study, the imported workflow, the composed config, the stores'
    schema check) serve every trial. A failure is left for the trial to meet and report."""
    from qflow.config.loader import load_config
    from qflow.config.project import find_project
    from qflow.runtime.discovery import load_workflow
    from qflow.store import open_stores

    try:
        _study(warm_up.store_url, warm_up.sweep_id, warm_up.pruner)
        project = find_project(Path(warm_up.project))
        workflow = load_workflow(warm_up.workflow, project)
        load_config(workflow.name, warm_up.overrides, project.conf_dir)
        open_stores(project.root)
    except Exception:  # the trial does the same and reports what failed
        return


_STUDIES: dict[tuple[str, str, str], Any] = {}
"""The studies this worker opened, by (store, sweep, pruner): opening Optuna's storage checks
its schema, which costs more than a trivial trial, so a worker does it once per sweep."""


def _study(store_url: str, sweep_id: str, pruner: str) -> Any:
    import optuna

    from qflow.sweep.pruning import create_pruner
    from qflow.sweep.storage import open_storage

    key = (store_url, sweep_id, pruner)
    study = _STUDIES.get(key)
    if study is None:
        study = _STUDIES[key] = optuna.load_study(
            study_name=sweep_id, storage=open_storage(store_url), pruner=create_pruner(pruner)
        )
    return study


def _one_trial(spec_path: Path, trials: Any) -> str:
    """Run one trial with its output in its own log; returns the outcome's status."""
    import optuna

    from qflow.runtime.heartbeat import interrupts_end_the_run

    spec: dict[str, Any] = json.loads(spec_path.read_text(encoding="utf-8"))
    result_path = Path(spec.pop("result"))
    job = trials.TrialJob(**spec)
    log = spec_path.with_suffix(".log")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    try:
        try:  # the driver stops a trial with SIGTERM: from here on it is a KeyboardInterrupt
            with interrupts_end_the_run():
                study = _study(job.store_url, job.sweep_id, job.pruner)
                trial = optuna.trial.Trial(study, job.trial_id)
                outcome = trials.run_trial(job, trial, own_process=True)
        except KeyboardInterrupt:
            outcome = trials.TrialRun("interrupted", None, trials._INTERRUPTED)
        trials._write(result_path, outcome)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    return str(outcome.status)


if __name__ == "__main__":
    sys.exit(main())
