"""``qflow exec script.py [args]``: track a plain Python script as a run.

The script runs in this process (``runpy``, as ``__main__``) inside a run with one step run,
``0_main``, so ``qf.log_*`` calls in it record exactly as they do in a workflow step. The
capture steps use (``qflow.runtime.reads``: an audit hook plus pyarrow's readers) sees every
file the script opens, inside the project or not; Python subprocesses report theirs through a
``sitecustomize`` on ``PYTHONPATH`` (``runtime/sitehook``), and the run warns about those that
cannot be seen (other programs, Python started with ``-I``/``-S``). The files read are recorded
with their sha256, and kept in the artifact store up to ``QFLOW_EXEC_KEEP_MAX`` bytes each
(100 MB) so ``qflow reproduce`` can put them back; the files written are stored as the step's
outputs (named by their path). Code (the script's text), arguments,
environment and stdout/stderr are recorded as for any run, so the run is listed, diffed,
compared and reproduced like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import runpy
import shlex
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.config.project import find_project
from qflow.errors import QFlowError, WorkflowNotFoundError
from qflow.runtime import reads
from qflow.runtime.capture import StreamCopy
from qflow.runtime.context import MetricRow, RunSinks, StepRecorder, current_recorder
from qflow.store.metadata.records import RunStatus, StepOutcome, StepStatus

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.contract import MetadataStore

STEP_NAME = "0_main"
OUTPUT_MAX = 1 << 30
"""Written files up to this size are stored as outputs; bigger ones are only hashed."""
KEEP_MAX = 100 * 1000 * 1000
KEEP_MAX_VARIABLE = "QFLOW_EXEC_KEEP_MAX"
SITEHOOK = Path(__file__).resolve().parent.parent / "runtime" / "sitehook"


def keep_max() -> int:
    """Inputs up to this many bytes are kept in the artifact store (``QFLOW_EXEC_KEEP_MAX``,
    bytes; default 100 MB), so ``qflow reproduce`` can put them back."""
    text = os.environ.get(KEEP_MAX_VARIABLE, "")
    try:
        return int(text) if text else KEEP_MAX
    except ValueError:
        raise QFlowError(
            f"{KEEP_MAX_VARIABLE}={text!r} is not a number of bytes. Hint: e.g. "
            f"{KEEP_MAX_VARIABLE}=1000000000 keeps inputs up to 1 GB; 0 keeps none."
        ) from None


@dataclass
class Children:
    """What the script's subprocesses did: Python ones report the files they open through
    a ``sitecustomize`` on ``PYTHONPATH`` (``runtime/sitehook``), others cannot be seen."""

    log_dir: Path

    def merge(self, capture: reads.Capture) -> list[str]:
        """Add what the children saw to ``capture``; return warnings about what was not
        (``capture.programs``: the subprocesses the script started)."""
        python, other = 0, []
        for program in capture.programs:
            name = os.path.basename(program)
            if name.startswith("python") or program == sys.executable:
                python += 1
            elif name not in other:
                other.append(name)
        reported = 0
        for log in sorted(self.log_dir.glob("*.log")):
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                kind, _, path = line.partition("\t")
                if kind == "p":
                    reported += 1
                elif kind in ("r", "w"):
                    capture.note(path, kind == "w")
        warnings = []
        if python > reported:
            missing = python - reported
            warnings.append(
                f"{missing} Python subprocess{'es' if missing > 1 else ''} of the script did "
                "not report the files they opened (started with -I or -S, or with an "
                "environment without PYTHONPATH); what they read and wrote is not recorded"
            )
        if other:
            warnings.append(
                f"files read or written by the script's non-Python subprocesses "
                f"({', '.join(other)}) cannot be seen and are not recorded"
            )
        return warnings


@contextlib.contextmanager
def children_reporting(log_dir: Path) -> Iterator[Children]:
    """While the block runs, Python subprocesses load ``runtime/sitehook/sitecustomize.py``
    and report the files they open to ``log_dir``; every subprocess started is counted."""
    children = Children(log_dir)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", reads.LOG_DIR_VARIABLE)}
    paths = [str(SITEHOOK), *filter(None, (saved["PYTHONPATH"] or "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    os.environ[reads.LOG_DIR_VARIABLE] = str(log_dir)
    try:
        yield children
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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

    return RunSinks(metrics, params, tags, artifact, metadata.record_step_output)


@dataclass(frozen=True)
class ScriptRun:
    """The outcome of ``exec_script``."""

    run_id: str
    status: str
    exit_code: int
    read: dict[str, dict[str, Any]]
    written: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


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
    accesses: list[reads.FileAccess], root: Path, artifacts: ArtifactStore
) -> tuple[dict[str, ArtifactRef], dict[str, dict[str, Any]]]:
    """Files the script wrote, stored as its outputs (named by their path) up to OUTPUT_MAX."""
    outputs: dict[str, ArtifactRef] = {}
    written: dict[str, dict[str, Any]] = {}
    for access in accesses:
        if not access.write:
            continue
        written[access.path] = {"sha256": access.sha256, "size": access.size}
        if access.size <= OUTPUT_MAX:
            outputs[access.path] = artifacts.put_path(reads.absolute(access.path, root))
    return outputs, written


def _keep_read(
    accesses: list[reads.FileAccess], root: Path, artifacts: ArtifactStore, limit: int
) -> tuple[dict[str, dict[str, Any]], dict[str, ArtifactRef]]:
    """Files the script read; those up to ``limit`` bytes are kept in the artifact store
    (``kept``: the blob), so the run can be reproduced after they changed or went away."""
    read: dict[str, dict[str, Any]] = {}
    kept: dict[str, ArtifactRef] = {}
    for access in accesses:
        if access.write:
            continue
        info: dict[str, Any] = {"sha256": access.sha256, "size": access.size}
        if access.size <= limit:
            with contextlib.suppress(OSError):
                kept[access.path] = artifacts.put_path(reads.absolute(access.path, root))
                info["kept"] = kept[access.path].key
        read[access.path] = info
    return read, kept


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
    exclude = [str(project.state_dir), str(path)]
    if "://" not in artifacts.url or artifacts.url.startswith("file://"):
        exclude.append(os.path.expanduser(artifacts.url.removeprefix("file://")))
    log_dir = Path(tempfile.mkdtemp(prefix="qflow-exec-"))
    capture = reads.Capture(
        str(project.root), exclude=(*exclude, str(log_dir)), log_dir=str(log_dir)
    )
    warnings: list[str] = []
    out, err = StreamCopy(sys.stdout), StreamCopy(sys.stderr)
    recorder.streams = (out.copy, err.copy)
    token = current_recorder.set(recorder)
    recorder.open()
    status, code = RunStatus.FAILED, 1
    error: str | None = "interrupted"
    trace: str | None = None
    try:
        with (
            children_reporting(log_dir) as children,
            reads.capturing(capture),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code, error, trace = _run_script(path, args)
        status = RunStatus.SUCCEEDED if code == 0 else RunStatus.FAILED
        warnings = children.merge(capture)
    finally:
        current_recorder.reset(token)
        recorder.close()
        shutil.rmtree(log_dir, ignore_errors=True)
        for warning in warnings:
            sys.stderr.write(f"qflow exec: warning: {warning}\n")
        accesses = capture.accesses()
        outputs, written = _store_written(accesses, project.root, artifacts)
        read, kept = _keep_read(accesses, project.root, artifacts, keep_max())
        metadata.finish_step_run(
            step_run_id,
            StepOutcome(
                StepStatus(status),
                outputs=outputs,
                error=error,
                traceback=trace,
                stdout=out.copy.getvalue(),
                stderr=err.copy.getvalue(),
            ),
        )
        metadata.record_data_files(step_run_id, [a.to_record() for a in accesses])
        for name, ref in kept.items():
            metadata.log_run_artifact(run.id, f"input:{name}", ref, step_run_id=step_run_id)
        files = {"read": read, "written": written, "warnings": warnings}
        metadata.update_run_meta(run.id, {"files": files})
        metadata.finish_run(run.id, status, error=error)
    plain = {k: {"sha256": v["sha256"], "size": v["size"]} for k, v in read.items()}
    return ScriptRun(run.id, status, code, plain, written, warnings)
