"""Containerised steps: the exact docker/podman command a step with ``image=`` runs.

Layout inside the container::

    /qflow/inputs/<name>   each input artifact (a file or folder), mounted read-only
    /qflow/outputs         an empty host folder, read-write; every file left there is an output
    /qflow/work            the working directory (a scratch folder inside the container)

The environment has ``QFLOW_INPUTS``, ``QFLOW_OUTPUTS``, ``QFLOW_RUN_ID``/``QFLOW_STEP`` when
given, and the step's own ``env``. The container runs as the calling user (docker and
podman run by root: ``--user UID:GID``; rootless podman: ``--userns keep-id``) so the outputs
belong to them, with ``--rm``, no TTY, and a tmpfs as its working directory. The engine is
``$QFLOW_CONTAINER_ENGINE``, else docker, else podman; it must be on ``PATH`` and answer
``<engine> version`` (the docker daemon must be running).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qflow.errors import QFlowError

ENGINES = ("docker", "podman")
INPUTS = "/qflow/inputs"
OUTPUTS = "/qflow/outputs"
WORKDIR = "/qflow/work"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ContainerError(QFlowError):
    """No usable container engine, or a container step that cannot be started as declared."""


@dataclass(frozen=True)
class ContainerSpec:
    """What a containerised step needs: image, command, inputs (name → host path), outputs."""

    image: str
    command: Sequence[str]
    inputs: Mapping[str, Path] = field(default_factory=dict)
    output_dir: Path = Path("outputs")
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = WORKDIR
    network: str | None = None
    """``none`` to cut the container off the network; None keeps the engine's default."""


@dataclass(frozen=True)
class ContainerResult:
    """How the container ended and the files it left in the output folder."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, Path]


def _check(spec: ContainerSpec) -> None:
    if not spec.image or spec.image.startswith("-") or any(c.isspace() for c in spec.image):
        raise ContainerError(
            f"Container image {spec.image!r} is not an image reference, e.g. "
            "'python:3.11-slim' or 'ghcr.io/org/tool:1.2'."
        )
    for name, path in spec.inputs.items():
        if _NAME.fullmatch(name) is None:
            raise ContainerError(
                f"Container input name {name!r} cannot be a file name: use letters, digits, "
                "_ . - only."
            )
        if not Path(path).exists():
            raise ContainerError(f"Container input {name!r}: {path} does not exist.")
    for key in spec.env:
        if _ENV_KEY.fullmatch(key) is None:
            raise ContainerError(f"Environment variable name {key!r} is not valid.")


def _user_flags(engine: str) -> list[str]:
    # Rootless podman maps the caller to itself with keep-id; podman run by root refuses
    # keep-id ("only supported in rootless mode") and, like docker, takes --user.
    if Path(engine).name.startswith("podman") and hasattr(os, "getuid") and os.getuid() != 0:
        return ["--userns", "keep-id"]
    if hasattr(os, "getuid"):
        return ["--user", f"{os.getuid()}:{os.getgid()}"]
    return []


def container_command(
    spec: ContainerSpec,
    engine: str = "docker",
    *,
    run_id: str | None = None,
    step: str | None = None,
) -> list[str]:
    """The argv that runs ``spec`` with ``engine`` (``docker``, ``podman`` or a path to one)."""
    _check(spec)
    output_dir = Path(spec.output_dir).resolve()
    command = [engine, "run", "--rm", "--init", *_user_flags(engine), "--workdir", spec.workdir]
    # A scratch working directory: podman (unlike docker) refuses a --workdir the image lacks.
    command += ["--tmpfs", f"{spec.workdir}:rw,exec,mode=1777"]
    if spec.network is not None:
        command += ["--network", spec.network]
    for name, path in sorted(spec.inputs.items()):
        source = Path(path).resolve()
        command += ["--mount", f"type=bind,source={source},target={INPUTS}/{name},readonly"]
    command += ["--mount", f"type=bind,source={output_dir},target={OUTPUTS}"]
    variables = {"QFLOW_INPUTS": INPUTS, "QFLOW_OUTPUTS": OUTPUTS}
    if run_id:
        variables["QFLOW_RUN_ID"] = run_id
    if step:
        variables["QFLOW_STEP"] = step
    variables.update(spec.env)
    for key, value in variables.items():
        command += ["--env", f"{key}={value}"]
    return [*command, "--", spec.image, *spec.command]


def detect_engine(preferred: str | None = None, *, timeout: float = 15.0) -> str:
    """The path of a container engine that answers, or ``ContainerError`` saying what is
    missing: ``preferred``, else ``$QFLOW_CONTAINER_ENGINE``, else docker, else podman."""
    wanted = preferred or os.environ.get("QFLOW_CONTAINER_ENGINE") or None
    candidates = [wanted] if wanted else list(ENGINES)
    problems = []
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            problems.append(f"{name} is not on PATH")
            continue
        try:
            answer = subprocess.run(
                [path, "version"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{name} at {path} did not answer ({type(exc).__name__})")
            continue
        if answer.returncode == 0:
            return path
        first = (answer.stderr.strip().splitlines() or ["no output"])[0][:200]
        problems.append(f"{name} at {path} is installed but its engine does not answer: {first}")
    raise ContainerError(
        "No container engine can run this containerised step: "
        + "; ".join(problems)
        + ".\nHint: install Docker (and start its daemon: sudo systemctl start docker) or "
        "Podman, or set QFLOW_CONTAINER_ENGINE to the engine's command."
    )


def collect_outputs(output_dir: Path) -> dict[str, Path]:
    """Every file left in ``output_dir``, by its path relative to it (``a/b.csv``)."""
    root = Path(output_dir)
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def run_container(
    spec: ContainerSpec,
    *,
    engine: str | None = None,
    run_id: str | None = None,
    step: str | None = None,
    timeout: float | None = None,
) -> ContainerResult:
    """Run ``spec`` to the end and return its exit code, output and the files it wrote."""
    executable = detect_engine(engine)
    Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
    command = container_command(spec, executable, run_id=run_id, step=step)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    return ContainerResult(
        command,
        result.returncode,
        result.stdout,
        result.stderr,
        collect_outputs(spec.output_dir),
    )
