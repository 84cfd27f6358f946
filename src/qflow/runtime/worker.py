"""Execute one step task: load inputs, call the user's function, store outputs.

This is the only code that runs user step functions; every executor calls it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

# Outputs are written with the process's serializers, which the plugin registry provides (the
# store layer below cannot import it): importing it here installs it in worker processes too.
import qflow.plugins.registry  # noqa: F401
from qflow.dsl.tracing import StepOutput, running_step, substitute
from qflow.dsl.values import DataFile
from qflow.errors import QFlowError
from qflow.runtime import reads
from qflow.runtime.cachekey import data_file_parameters
from qflow.runtime.capture import captured_logging, captured_output, log_level
from qflow.runtime.context import RunSinks, StepRecorder, current_recorder
from qflow.runtime.task import INLINE_MAX, StepTask, TaskResult, handle_key
from qflow.store.metadata.records import StepStatus

if TYPE_CHECKING:
    from qflow.config.project import Project
    from qflow.store.artifacts import ArtifactRef, ArtifactStore

_PATH_MAX = 4096


def split_outputs(task: StepTask, value: Any) -> dict[str, Any]:
    """Map the function's return value to the step's declared outputs."""
    names = task.step.outputs
    if names == ("return",):
        return {"return": value}
    if isinstance(value, dict) and set(value) == set(names):
        return {name: value[name] for name in names}
    if isinstance(value, tuple | list) and len(value) == len(names):
        return dict(zip(names, value, strict=True))
    raise QFlowError(
        f"Step {task.node.name!r} declares {len(names)} outputs ({', '.join(names)}) but "
        f"returned {type(value).__name__} {value!r:.80}. Hint: return a tuple of "
        f"{len(names)} values, or a dict with keys {', '.join(names)}."
    )


def _resolve(task: StepTask, artifacts: ArtifactStore) -> dict[str, Any]:
    """The step's arguments, each input freshly loaded from the store: a step that mutates
    its input never changes what another step (or item) receives, on any executor."""

    def lookup(handle: StepOutput) -> Any:
        return artifacts.get(task.inputs[handle_key(handle.node, handle.output)])

    return {name: substitute(value, lookup) for name, value in task.arguments.items()}


def _store(
    task: StepTask, outputs: dict[str, Any], artifacts: ArtifactStore
) -> dict[str, ArtifactRef]:
    refs: dict[str, ArtifactRef] = {}
    for name, value in outputs.items():
        label = task.node.name if name == "return" else f"{task.node.name}.{name}"
        refs[name] = artifacts.put(value, name=label, inline_max=INLINE_MAX)
    return refs


def _call(
    task: StepTask, bound: inspect.BoundArguments, timeout: float | None, scratch: list[Path]
) -> Any:
    """Call the step: as a plain function, in its own environment, or in a container."""
    options = task.step.options
    if options.image:
        return _in_container(task, bound, timeout, scratch)
    if options.env:
        from qflow.runtime.pyenv import call_in_env, ensure_env, requirements_from_option

        root = Path(task.project_root or ".").resolve()
        env = ensure_env(requirements_from_option(options.env), root / ".qflow" / "envs")
        sys.stdout.write(f"[qflow] environment {env.digest[:12]} at {env.path}\n")
        fn = task.step.fn
        result = call_in_env(
            env,
            f"{fn.__module__}:{fn.__qualname__}",
            bound.args,
            bound.kwargs,
            sys_path=[root / "src", root, *_import_root(fn)],
            timeout=timeout,
        )
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.value
    return task.step.fn(*bound.args, **bound.kwargs)


def _import_root(fn: Any) -> list[Path]:
    """The folder from which ``fn``'s module imports (its package's parent)."""
    module = sys.modules.get(getattr(fn, "__module__", ""))
    file = getattr(module, "__file__", None)
    if not file:
        return []
    depth = len(fn.__module__.split("."))
    if Path(file).name == "__init__.py":
        depth += 1
    return [Path(file).resolve().parents[depth - 1]]


def _in_container(
    task: StepTask, bound: inspect.BoundArguments, timeout: float | None, scratch: list[Path]
) -> Path:
    """Run the argv the step function returns in its image; inputs that are files or folders
    are mounted read-only, and the files the container writes become the step's output."""
    from qflow.runtime.container import INPUTS, ContainerSpec, run_container

    image = task.step.options.image or ""
    mounts = {
        name: Path(value)
        for name, value in bound.arguments.items()
        if isinstance(value, Path) and value.exists()
    }
    inside = dict(bound.arguments)
    inside.update({name: PurePosixPath(INPUTS) / name for name in mounts})
    command = task.step.fn(**inside)
    if not isinstance(command, list | tuple) or not all(isinstance(a, str) for a in command):
        raise QFlowError(
            f"Step {task.node.name!r} runs in image {image!r}, so it must return the command "
            f"to run as a list of strings, not {type(command).__name__}."
        )
    output = Path(tempfile.mkdtemp(prefix="qflow-container-"))
    scratch.append(output)
    result = run_container(
        ContainerSpec(image, list(command), mounts, output),
        run_id=task.run_id,
        step=task.node.name,
        timeout=timeout,
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"the container ({image}) exited with code {result.returncode}")
    return output


def _time_limit(seconds: float | None, step: str) -> contextlib.AbstractContextManager[None]:
    """Interrupt the step's own thread after ``seconds`` with a ``TimeoutError``.

    SIGALRM stops Python code and any C code that checks for signals (sleep, I/O, numpy
    loops release early). Executors with worker processes also kill a worker that does not
    return soon after this, so the work is stopped, never abandoned.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()
    return _alarm(seconds, step)


@contextlib.contextmanager
def _alarm(seconds: float, step: str) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"step {step} exceeded its timeout of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def file_capture(task: StepTask, artifacts: ArtifactStore) -> reads.Capture:
    """What records the files the step reads and writes (never QFlow's own store)."""
    root = os.path.abspath(task.project_root or ".")
    return reads.Capture(root, exclude=_not_captured(root, artifacts.url))


@functools.lru_cache(maxsize=16)
def _not_captured(root: str, artifacts_url: str) -> tuple[str, ...]:
    """QFlow's own folders under the project ``root``: its store and artifact folder
    (computed once: every mapped item asks)."""
    exclude = [os.path.join(root, ".qflow")]
    if "://" not in artifacts_url or artifacts_url.startswith("file://"):
        exclude.append(os.path.expanduser(artifacts_url.removeprefix("file://")))
    return tuple(exclude)


def _note_path_arguments(
    capture: reads.Capture, task: StepTask, bound: inspect.BoundArguments
) -> None:
    """``str``/``Path`` arguments that name existing files count as read; ``qf.DataFile``
    ones are part of the cache key already, so the capture leaves them out."""
    declared = data_file_parameters(task.step.fn)
    for name, value in bound.arguments.items():
        if not isinstance(value, str | Path) or len(str(value)) > _PATH_MAX:
            continue
        if isinstance(value, DataFile) or name in declared:
            capture.skip(os.path.abspath(value))
        elif os.path.isfile(value):
            capture.note(os.path.abspath(value), False)


def _project(root: str) -> Project:
    """The project's settings (log level, data files to keep), read again when its
    ``pyproject.toml`` changes."""
    try:
        stamp = os.stat(os.path.join(root, "pyproject.toml")).st_mtime_ns
    except OSError:
        stamp = 0
    return _project_at(root, stamp)


@functools.lru_cache(maxsize=16)
def _project_at(root: str, stamp: int) -> Project:
    from qflow.config.project import Project, find_project
    from qflow.errors import ConfigError

    try:
        return find_project(Path(root))
    except ConfigError:  # refused at launch already; a worker keeps the defaults
        return Project(Path(root))


def _keep_data_files(
    task: StepTask, bound: inspect.BoundArguments, sinks: RunSinks, project: Project | None
) -> None:
    """Keep the content of the step's ``qf.DataFile(..., keep=True)`` arguments (every
    ``qf.DataFile`` with ``[tool.qflow] keep-data-files``) as run artifacts ``data:<path>``,
    up to ``keep-data-max`` bytes each, so ``qflow reproduce`` can restore them."""
    keep_all = project.keep_data_files if project else False
    limit = project.keep_data_max if project else 100_000_000
    declared = data_file_parameters(task.step.fn)
    for name, value in bound.arguments.items():
        marked = isinstance(value, DataFile) and value.keep
        if not (marked or (keep_all and (isinstance(value, DataFile) or name in declared))):
            continue
        if not isinstance(value, str | Path) or not os.path.isfile(value):
            continue
        size = os.path.getsize(value)
        if size > limit:
            sys.stderr.write(
                f"[qflow] data file {value} ({size} bytes) is over keep-data-max ({limit} "
                "bytes): its hash is recorded, its content not kept\n"
            )
            continue
        try:
            sinks.artifact(task.run_id, task.step_run_id, f"data:{value}", Path(value))
        except OSError as exc:  # keeping is a convenience: it never fails the step
            sys.stderr.write(f"[qflow] data file {value} could not be kept: {exc}\n")


def _log_settings(task: StepTask, project: Project | None) -> tuple[int, list[str]]:
    """The level a step's log records are kept at (``QFLOW_LOG_LEVEL``, else the project's
    ``[tool.qflow] log-level``, else INFO) and the project's loggers: the step's package."""
    level = os.environ.get("QFLOW_LOG_LEVEL") or (project.log_level if project else None)
    module = str(getattr(task.step.fn, "__module__", "") or "")
    return log_level(level), [module.split(".")[0]] if module else []


def execute(task: StepTask, artifacts: ArtifactStore, sinks: RunSinks) -> TaskResult:
    """Run the task with its retry policy; never raises for a failure of user code."""
    options = task.step.options
    capture = file_capture(task, artifacts)
    scratch: list[Path] = []
    timeout = options.timeout if isinstance(options.timeout, float) else None
    recorder = StepRecorder(task.run_id, task.step_run_id, task.node.name, sinks)
    started = time.time()
    attempts = 0
    error: str | None = None
    trace: str | None = None
    refs: dict[str, ArtifactRef] = {}
    project = _project(task.project_root) if task.project_root else None
    token_step = running_step.set(task.node.name)
    token_rec = current_recorder.set(recorder)
    recorder.open()
    try:
        with captured_output() as (out, err), captured_logging(err, *_log_settings(task, project)):
            recorder.streams = (out.copy, err.copy)
            while True:
                attempts += 1
                try:
                    arguments = _resolve(task, artifacts)
                    bound = inspect.BoundArguments(task.step.signature, OrderedDict(arguments))
                    if attempts == 1:
                        _keep_data_files(task, bound, sinks, project)
                    with _time_limit(timeout, task.node.name), reads.capturing(capture):
                        _note_path_arguments(capture, task, bound)
                        value = _call(task, bound, timeout, scratch)
                    refs = _store(task, split_outputs(task, value), artifacts)
                except QFlowError as exc:
                    error, trace = str(exc), traceback.format_exc()
                    break
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    trace = traceback.format_exc()
                    if attempts <= options.retries:
                        sys.stderr.write(f"[qflow] attempt {attempts} failed: {error}; retrying\n")
                        time.sleep(options.retry_delay)
                        continue
                    break
                else:
                    error = trace = None
                    break
    finally:
        running_step.reset(token_step)
        current_recorder.reset(token_rec)
        recorder.close()
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
    return TaskResult(
        task.step_run_id,
        StepStatus.FAILED if error is not None else StepStatus.SUCCEEDED,
        refs if error is None else {},
        started,
        time.time(),
        attempts,
        error=error,
        traceback=trace,
        stdout=out.copy.getvalue(),
        stderr=err.copy.getvalue(),
        files=capture.accesses(),
    )
