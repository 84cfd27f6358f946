"""``qflow exec script.py [args]``: track a plain Python script as a run.

The script runs in this process (``runpy``, as ``__main__``) inside a run with one step run,
``0_main``, so ``qf.log_*`` calls in it record exactly as they do in a workflow step. An audit
hook (``sys.addaudithook``, ``open`` events) sees every file the script opens; the files under
the project it read are recorded with their sha256 (in the run's meta), the files it wrote are
stored as the step's outputs (named by their path). Code (the script's text), arguments,
environment and stdout/stderr are recorded as for any run, so the run is listed, diffed,
compared and reproduced like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import runpy
import shlex
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.config.project import Project, find_project
from qflow.errors import WorkflowNotFoundError
from qflow.runtime.capture import StreamCopy
from qflow.runtime.context import MetricRow, RunSinks, StepRecorder, current_recorder
from qflow.store.metadata.records import DataFileRecord

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.metadata.store import MetadataStore

STEP_NAME = "0_main"
OUTPUT_MAX = 1 << 30
"""Written files up to this size are stored as outputs; bigger ones are only hashed."""
_CHUNK = 1 << 20


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass
class FileTracker:
    """Collects the files under ``root`` opened for reading and for writing (audit hook)."""

    root: Path
    exclude: tuple[Path, ...] = ()
    read: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    _busy: threading.local = field(default_factory=threading.local)

    def relative(self, raw: object) -> str | None:
        if isinstance(raw, int) or raw is None:
            return None
        try:
            path = Path(os.path.abspath(os.fsdecode(raw)))  # type: ignore[arg-type]
            rel = path.relative_to(self.root)
        except (TypeError, ValueError):
            return None
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            return None
        if path.suffix == ".pyc" or any(path == e or e in path.parents for e in self.exclude):
            return None
        return rel.as_posix()

    def opened(self, raw: object, mode: object, flags: object) -> None:
        if getattr(self._busy, "on", False):
            return
        rel = self.relative(raw)
        if rel is None:
            return
        if isinstance(mode, str):
            writing = any(c in mode for c in "wax+")
        else:
            bits = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
            writing = isinstance(flags, int) and bool(flags & bits)
        if writing:
            self.written.add(rel)
        elif rel not in self.read and rel not in self.written:
            self._busy.on = True
            try:
                sha, size = file_digest(self.root / rel)
                self.read[rel] = {"sha256": sha, "size": size}
            except OSError:
                pass
            finally:
                self._busy.on = False


_trackers: list[FileTracker] = []
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _trackers:
        _trackers[-1].opened(*args[:3])


@contextlib.contextmanager
def tracking(tracker: FileTracker) -> Any:
    """Feed ``open`` events to ``tracker`` while the block runs (the hook stays installed,
    as audit hooks cannot be removed, but does nothing when no tracker is active)."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True
    _trackers.append(tracker)
    try:
        yield tracker
    finally:
        _trackers.remove(tracker)


def direct_sinks(metadata: MetadataStore, artifacts: ArtifactStore) -> RunSinks:
    """Record straight into the stores: the script's process is the run's coordinator."""

    def metrics(rows: list[MetricRow]) -> None:
        metadata.log_metrics(rows)

    def params(run_id: str, step_run_id: int | None, values: Mapping[str, Any]) -> None:
        metadata.log_params(run_id, dict(values), step_run_id=step_run_id)

    def tags(run_id: str, values: Mapping[str, str]) -> None:
        metadata.set_tags(run_id, dict(values))

    def artifact(run_id: str, step_run_id: int | None, name: str, source: Any) -> None:
        ref = (
            artifacts.put_bytes(source) if isinstance(source, bytes) else artifacts.put_path(source)
        )
        metadata.log_run_artifact(run_id, name, ref, step_run_id=step_run_id)

    return RunSinks(metrics, params, tags, artifact)


@dataclass(frozen=True)
class ScriptRun:
    """The outcome of ``exec_script``."""

    run_id: str
    status: str
    exit_code: int
    read: dict[str, dict[str, Any]]
    written: dict[str, dict[str, Any]]


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    sys.stderr.write(f"{exc.code}\n")
    return 1


def _run_script(path: Path, args: Sequence[str]) -> tuple[int, str | None, str | None]:
    """Run the script as ``__main__``; return (exit code, error, traceback)."""
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else ""
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        code = _exit_code(exc)
        return code, (None if code == 0 else f"exit code {code}"), None
    except Exception as exc:
        trace = traceback.format_exc()
        sys.stderr.write(trace)
        return 1, f"{type(exc).__name__}: {exc}", trace
    finally:
        sys.argv = saved_argv
        if sys.path and sys.path[0] == str(path.parent):
            del sys.path[0]
        elif saved_path0 and saved_path0 not in sys.path:
            sys.path.insert(0, saved_path0)
    return 0, None, None


def _store_written(
    project: Project, tracker: FileTracker, artifacts: ArtifactStore
) -> tuple[dict[str, ArtifactRef], dict[str, dict[str, Any]]]:
    outputs: dict[str, ArtifactRef] = {}
    written: dict[str, dict[str, Any]] = {}
    for rel in sorted(tracker.written):
        path = project.root / rel
        if not path.is_file():
            continue
        sha, size = file_digest(path)
        written[rel] = {"sha256": sha, "size": size}
        if size <= OUTPUT_MAX:
            outputs[rel] = artifacts.put_path(path)
    return outputs, written


def exec_script(
    script: str | Path,
    args: Sequence[str] = (),
    *,
    project_dir: str | Path | None = None,
    tags: Mapping[str, str] | None = None,
    command: str | None = None,
) -> ScriptRun:
    """Run ``script`` with ``args`` as a tracked run and return what it recorded."""
    from qflow.runtime.launch import environment_meta
    from qflow.store import open_stores

    path = Path(script).expanduser().resolve()
    if not path.is_file():
        raise WorkflowNotFoundError(
            f"Script {str(script)!r} does not exist. Hint: give the path of a .py file."
        )
    project = find_project(Path(project_dir) if project_dir else None)
    rel = path.relative_to(project.root) if path.is_relative_to(project.root) else path
    source = path.read_text(encoding="utf-8")
    metadata, artifacts = open_stores(project.root)
    metadata.mark_crashed_runs()
    meta = environment_meta(project, "exec", metadata, artifacts)
    meta["script"] = {
        "path": rel.as_posix(),
        "args": list(args),
        "sha256": hashlib.sha256(source.encode()).hexdigest(),
    }
    run = metadata.create_run(
        workflow=rel.as_posix(),
        config={"args": list(args)},
        command=command if command is not None else shlex.join(["qflow", "exec", *sys.argv[2:]]),
        meta=meta,
    )
    if tags:
        metadata.set_tags(run.id, dict(tags))
    step_run_id = metadata.create_step_run(
        run_id=run.id,
        name=STEP_NAME,
        step="main",
        position=0,
        params={"args": shlex.join(args)},
        source=source,
    )
    metadata.start_step_run(step_run_id)
    recorder = StepRecorder(run.id, step_run_id, STEP_NAME, direct_sinks(metadata, artifacts))
    tracker = FileTracker(project.root, exclude=(project.state_dir, path))
    out, err = StreamCopy(sys.stdout), StreamCopy(sys.stderr)
    token = current_recorder.set(recorder)
    recorder.open()
    status, code = "failed", 1
    error: str | None = "interrupted"
    trace: str | None = None
    try:
        with (
            tracking(tracker),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code, error, trace = _run_script(path, args)
        status = "succeeded" if code == 0 else "failed"
    finally:
        current_recorder.reset(token)
        recorder.close()
        outputs, written = _store_written(project, tracker, artifacts)
        metadata.finish_step_run(
            step_run_id,
            status=status,
            outputs=outputs,
            error=error,
            traceback=trace,
            stdout=out.copy.getvalue(),
            stderr=err.copy.getvalue(),
        )
        metadata.record_data_files(
            step_run_id,
            [
                DataFileRecord(rel, rel, info["sha256"], info["size"])
                for rel, info in sorted(tracker.read.items())
            ],
        )
        metadata.update_run_meta(run.id, {"files": {"read": tracker.read, "written": written}})
        metadata.finish_run(run.id, status, error=error)
    return ScriptRun(run.id, status, code, dict(tracker.read), written)
