"""Per-step Python environments (``@qf.step(env={"pip": ["scikit-learn==1.5.2"]})``).

1. **Lock**: pip resolves the requirement list once (``pip install --dry-run --report``, the
   package registry is the only network used) into exact ``name==version --hash=sha256:…``
   lines, cached in ``<cache>/resolved/<hash of the list>.txt`` (``refresh=True`` resolves
   again).
2. **Build**: the environment is ``<cache>/<hash of the lock and the Python>``, created with
   ``python -m venv`` and ``pip install --no-deps --require-hashes -r lock``, under a file
   lock, and marked complete by ``qflow-env.json`` written last (a half-built folder is
   rebuilt). QFlow's own package is linked in (``import qflow`` works; it needs only the
   standard library for ``qf.step``/``qf.log_*``), nothing else of the calling environment.
3. **Call**: :func:`call_in_env` runs ``module:function`` in the environment's interpreter
   (``python -I``, arguments and result pickled through files) and returns its value and
   output. :meth:`PythonEnv.record` is what a run records about the environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qflow.errors import QFlowError

MARKER = "qflow-env.json"


class EnvironmentBuildError(QFlowError):
    """A step's Python environment cannot be resolved, built or used."""


@dataclass(frozen=True)
class PythonEnv:
    """A built environment: where it is, its interpreter and its locked requirements."""

    path: Path
    python: Path
    requirements: tuple[str, ...]
    lock: tuple[str, ...]
    digest: str
    created: bool
    """True when this call built it; False when it came from the cache."""

    def record(self) -> dict[str, Any]:
        """What a run records about the environment a step ran in."""
        return {
            "digest": self.digest,
            "path": str(self.path),
            "python": platform.python_version(),
            "requirements": list(self.requirements),
            "lock": list(self.lock),
        }


@dataclass(frozen=True)
class EnvCallResult:
    """The value a function returned in an environment, and what it printed."""

    value: Any
    stdout: str
    stderr: str


def requirements_from_option(env: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The pip requirements of a step's ``env=`` option (``{"pip": [...]}``)."""
    if not env:
        return ()
    unknown = set(env) - {"pip"}
    pip = env.get("pip", [])
    if unknown or not isinstance(pip, list | tuple) or not all(isinstance(r, str) for r in pip):
        raise EnvironmentBuildError(
            f"Step env {dict(env)!r} is not supported: write env={{'pip': ['package==1.2', …]}}."
        )
    cleaned = tuple(sorted({r.strip() for r in pip if r.strip()}))
    for requirement in cleaned:
        if requirement.startswith("-") or "\n" in requirement:
            raise EnvironmentBuildError(
                f"Requirement {requirement!r} is not a requirement (pip options are not allowed)."
            )
    return cleaned


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], what: str, timeout: float | None = None) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentBuildError(f"{what} failed: {exc}.") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise EnvironmentBuildError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def _lock_lines(report: dict[str, Any]) -> tuple[str, ...]:
    lines = []
    for item in report.get("install", []):
        name = item["metadata"]["name"].lower().replace("_", "-")
        version = item["metadata"]["version"]
        info = item.get("download_info", {})
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        if item.get("is_direct"):
            lines.append(f"{name} @ {info['url']}")
        elif "sha256" in hashes:
            lines.append(f"{name}=={version} --hash=sha256:{hashes['sha256']}")
        else:
            lines.append(f"{name}=={version}")
    return tuple(sorted(lines))


def resolve(
    requirements: Sequence[str],
    cache_dir: Path,
    *,
    python: str = sys.executable,
    refresh: bool = False,
) -> tuple[str, ...]:
    """The locked requirement lines for ``requirements`` (resolved once, then cached)."""
    key = _digest(platform.python_version(), sys.platform, *requirements)
    cached = cache_dir / "resolved" / f"{key}.txt"
    if cached.is_file() and not refresh:
        return tuple(line for line in cached.read_text().splitlines() if line)
    if not requirements:
        return ()
    output = _run(
        [
            *(python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"),
            *("--disable-pip-version-check", "--report", "-", *requirements),
        ],
        f"Resolving the step environment {list(requirements)}",
    )
    try:
        lock = _lock_lines(json.loads(output))
    except (ValueError, KeyError) as exc:
        raise EnvironmentBuildError(f"pip's resolution report cannot be read: {exc}.") from exc
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text("".join(f"{line}\n" for line in lock))
    os.replace(temporary, cached)
    return lock


def _link_qflow(env_path: Path, python: Path) -> None:
    """Make ``import qflow`` work in the environment without the rest of this one."""
    import qflow

    site = _run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        "Finding the environment's site-packages",
    ).strip()
    host = env_path / "qflow-host"
    host.mkdir(exist_ok=True)
    link = host / "qflow"
    if not link.exists():
        link.symlink_to(Path(qflow.__file__).resolve().parent, target_is_directory=True)
    Path(site, "_qflow_host.pth").write_text(f"{host}\n")


def _build(path: Path, lock: tuple[str, ...], python: str) -> Path:
    if path.exists():
        shutil.rmtree(path)  # a half-built environment (no marker) from an interrupted build
    _run([python, "-m", "venv", str(path)], f"Creating {path}")
    interpreter = path / "bin" / "python"
    if lock:
        lock_file = path / "requirements.lock"
        lock_file.write_text("".join(f"{line}\n" for line in lock))
        hashed = all("--hash=" in line for line in lock)
        _run(
            [
                *(str(interpreter), "-I", "-m", "pip", "install", "--no-deps", "--quiet"),
                *("--disable-pip-version-check", *(["--require-hashes"] if hashed else [])),
                *("-r", str(lock_file)),
            ],
            f"Installing the locked requirements into {path}",
        )
    _link_qflow(path, interpreter)
    return interpreter


def ensure_env(
    requirements: Sequence[str],
    cache_dir: Path,
    *,
    python: str = sys.executable,
    refresh: bool = False,
) -> PythonEnv:
    """The environment for ``requirements``, built once and cached by its locked contents."""
    wanted = tuple(sorted(set(requirements)))
    lock = resolve(wanted, cache_dir, python=python, refresh=refresh)
    digest = _digest(platform.python_version(), sys.platform, *lock)
    path = cache_dir / digest
    created = False
    with _file_lock(cache_dir / f".{digest}.lock"):
        if not (path / MARKER).is_file():
            _build(path, lock, python)
            marker = {"requirements": list(wanted), "lock": list(lock), "digest": digest}
            (path / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            created = True
    return PythonEnv(path, path / "bin" / "python", wanted, lock, digest, created)


_RUNNER = """
import importlib, pickle, sys, traceback
with open(sys.argv[1], "rb") as f:
    payload = pickle.load(f)
sys.path[:0] = payload["sys_path"]
try:
    module, _, name = payload["target"].partition(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    result = {"ok": True, "value": target(*payload["args"], **payload["kwargs"])}
except BaseException as exc:
    result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
sys.stdout.flush()
with open(sys.argv[2], "wb") as f:
    pickle.dump(result, f)
"""


def call_in_env(
    env: PythonEnv,
    target: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    sys_path: Sequence[str | Path] = (),
    timeout: float | None = None,
) -> EnvCallResult:
    """Call ``module:function`` inside ``env`` (a separate interpreter) and return its value.

    ``sys_path`` is where the function's module is found (the project's ``src``). Arguments
    and the return value travel pickled, so they must be importable on both sides.
    """
    with tempfile.TemporaryDirectory(prefix="qflow-call-") as folder:
        payload, result = Path(folder, "in.pickle"), Path(folder, "out.pickle")
        with open(payload, "wb") as handle:
            pickle.dump(
                {
                    "target": target,
                    "args": tuple(args),
                    "kwargs": dict(kwargs or {}),
                    "sys_path": [str(p) for p in sys_path],
                },
                handle,
            )
        try:
            done = subprocess.run(
                [str(env.python), "-I", "-c", _RUNNER, str(payload), str(result)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentBuildError(f"{target} in {env.path} timed out.") from exc
        if not result.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            raise EnvironmentBuildError(
                f"{target} in {env.path} ended without a result (exit {done.returncode}):\n{tail}"
            )
        with open(result, "rb") as handle:
            answer = pickle.load(handle)
    if not answer["ok"]:
        raise EnvironmentBuildError(
            f"{target} raised in its environment {env.digest}: {answer['error']}\n{answer['trace']}"
        )
    return EnvCallResult(answer["value"], done.stdout, done.stderr)
