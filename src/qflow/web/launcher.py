"""Start runs from the dashboard: ``python -m qflow run`` in a child process, never a shell.

The workflow must be one the project declares and every override must parse as
``key=value`` before anything starts; the command line is a list ending ``-- WORKFLOW
OVERRIDES…`` so nothing a user types can become an option. The child writes to the same
stores as the server (``QFLOW_STORE``/``QFLOW_ARTIFACTS``) and is tagged with the launch id,
which is how the dashboard finds its run.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError, QFlowError, WorkflowNotFoundError, did_you_mean

MAX_RUNNING = 4
MAX_OVERRIDES = 200
_KEY = re.compile(r"^[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*$")
LAUNCH_TAG = "qflow.launch"


class TooManyLaunchesError(QFlowError):
    """Too many runs started from the dashboard are still going."""


@dataclass
class Launch:
    id: str
    workflow: str
    overrides: list[str]
    started_at: float
    process: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    ended_at: float | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    def to_dict(self) -> dict[str, Any]:
        state = (
            "running"
            if self.returncode is None
            else ("succeeded" if self.returncode == 0 else "failed")
        )
        return {
            "id": self.id,
            "workflow": self.workflow,
            "overrides": self.overrides,
            "state": state,
            "returncode": self.returncode,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "output": "".join(self.output),
        }


def flatten(config: Any, prefix: str = "") -> list[dict[str, Any]]:
    """The config's leaves as form fields: key, value and a type name."""
    if isinstance(config, dict):
        fields: list[dict[str, Any]] = []
        for key, value in config.items():
            fields.extend(flatten(value, f"{prefix}{key}."))
        return fields
    kind = (
        "bool"
        if isinstance(config, bool)
        else "int"
        if isinstance(config, int)
        else "float"
        if isinstance(config, float)
        else "null"
        if config is None
        else "list"
        if isinstance(config, list)
        else "str"
    )
    return [{"key": prefix.rstrip("."), "value": config, "type": kind}]


def check_overrides(overrides: list[str]) -> list[str]:
    """Each override must be ``[+|~]key=value``; anything else is a ``ConfigError``."""
    from qflow.config.loader import parse_override

    if len(overrides) > MAX_OVERRIDES:
        raise ConfigError(f"{len(overrides)} overrides is too many; the limit is {MAX_OVERRIDES}.")
    for text in overrides:
        if "\x00" in text or "\n" in text or "\r" in text:
            raise ConfigError(f"Override {text!r} contains a control character.")
        _, key, _ = parse_override(text)
        if not _KEY.match(key):
            raise ConfigError(f"Override key {key!r} is not a dotted config key.")
    return list(overrides)


class Launcher:
    """Launches of one server, kept in memory."""

    def __init__(self, project_dir: Path, store_url: str, artifacts_url: str) -> None:
        self.project_dir = project_dir
        self.store_url = store_url
        self.artifacts_url = artifacts_url
        self.launches: dict[str, Launch] = {}
        self._lock = threading.Lock()

    def workflows(self) -> dict[str, Any]:
        from qflow.config.project import find_project
        from qflow.runtime.discovery import project_workflows

        return project_workflows(find_project(self.project_dir))

    def workflow(self, name: str) -> Any:
        known = self.workflows()
        if name not in known:
            raise WorkflowNotFoundError(
                f"No workflow named {name!r} in this project. "
                f"Known: {', '.join(sorted(known)) or '(none)'}.{did_you_mean(name, known)}"
            )
        return known[name]

    def config(self, name: str, overrides: list[str] | None = None) -> dict[str, Any]:
        """The workflow's resolved config, as the run would get it."""
        from qflow.config.loader import load_config
        from qflow.config.project import find_project

        workflow = self.workflow(name)
        project = find_project(self.project_dir)
        config = load_config(workflow.name, check_overrides(overrides or []), project.conf_dir)
        return {"workflow": workflow.name, "config": config, "fields": flatten(config)}

    def start(self, name: str, overrides: list[str]) -> Launch:
        workflow = self.workflow(name)
        overrides = check_overrides(overrides)
        self.config(workflow.name, overrides)  # a bad override fails here, before any process
        with self._lock:
            running = sum(1 for item in self.launches.values() if item.returncode is None)
            if running >= MAX_RUNNING:
                raise TooManyLaunchesError(
                    f"{running} launched runs are still going; the limit is {MAX_RUNNING}. "
                    "Hint: wait for one to finish."
                )
            launch = Launch(secrets.token_hex(8), workflow.name, overrides, time.time())
            self.launches[launch.id] = launch
        command = [
            sys.executable,
            "-m",
            "qflow",
            "run",
            "--tag",
            f"{LAUNCH_TAG}={launch.id}",
            "--project",
            str(self.project_dir),
            "--",
            workflow.name,
            *overrides,
        ]
        env = {
            **os.environ,
            "QFLOW_STORE": self.store_url,
            "QFLOW_ARTIFACTS": self.artifacts_url,
            "NO_COLOR": "1",
            "COLUMNS": "120",
        }
        env.pop("QFLOW_TRACKING_URI", None)
        launch.process = subprocess.Popen(  # a list, no shell: nothing is interpreted
            command,
            cwd=self.project_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(
            target=self._follow, args=(launch,), name=f"launch-{launch.id}", daemon=True
        ).start()
        return launch

    def _follow(self, launch: Launch) -> None:
        process = launch.process
        assert process is not None and process.stdout is not None
        for line in iter(process.stdout.readline, b""):
            launch.output.append(line.decode("utf-8", errors="replace"))
        launch.returncode = process.wait()
        launch.ended_at = time.time()

    def get(self, launch_id: str) -> Launch:
        launch = self.launches.get(launch_id)
        if launch is None:
            raise WorkflowNotFoundError(f"No launch with id {launch_id!r} on this server.")
        return launch

    def close(self) -> None:
        for launch in self.launches.values():
            if launch.process is not None and launch.process.poll() is None:
                launch.process.terminate()
