"""Start runs from the dashboard: ``python -m qflow run`` in a child process, never a shell.

The workflow must be one the project declares and every override must parse as
``key=value`` before anything starts; the command line is a list ending ``-- WORKFLOW
OVERRIDES…`` so nothing a user types can become an option. The child writes to the same
stores as the server (``QFLOW_STORE``/``QFLOW_ARTIFACTS``) and is tagged with the launch id,
which is how the dashboard finds its run.

A web client may change only the workflow's own config: an override must be ``key=value``
(no ``+``/``~``), its key must not configure QFlow itself (``tracker``, ``executor``, the
stores, ``hydra``…: where QFlow writes, which URLs it contacts, what runs the steps are the
server's choice) and, when the workflow has a config file, must name a key that file has; no
value may contain an interpolation (``${…}``, so no ``oc.env`` reading the server's
environment). The config preview resolves ``${oc.env:…}`` in the project's own files to a
placeholder, never to the server's environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError, QFlowError, WorkflowNotFoundError, did_you_mean

MAX_RUNNING = 4
MAX_OVERRIDES = 200
_KEY = re.compile(r"^[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*$")
LAUNCH_TAG = "qflow.launch"
SERVER_KEYS = frozenset(
    {
        "tracker",
        "trackers",
        "executor",
        "store",
        "stores",
        "artifacts",
        "registry",
        "hydra",
        "qflow",
        "server",
    }
)
"""Top-level config keys that configure QFlow itself; a web client cannot set them."""
ENV_PLACEHOLDER = "<server environment: not shown>"
_ENV_RESOLVERS = ("oc.env", "env")
_RESOLVER_LOCK = threading.Lock()


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


def check_overrides(overrides: list[str], known: dict[str, Any] | None = None) -> list[str]:
    """Each override must be ``key=value`` on the workflow's own config; anything else is a
    ``ConfigError`` (see the module docstring). ``known`` is the workflow's config without
    overrides, or None when it has no config file."""
    from qflow.config.loader import parse_override

    if len(overrides) > MAX_OVERRIDES:
        raise ConfigError(f"{len(overrides)} overrides is too many; the limit is {MAX_OVERRIDES}.")
    for text in overrides:
        if "\x00" in text or "\n" in text or "\r" in text:
            raise ConfigError(f"Override {text!r} contains a control character.")
        prefix, key, value = parse_override(text)
        if not _KEY.match(key):
            raise ConfigError(f"Override key {key!r} is not a dotted config key.")
        top = re.split(r"[.\[]", key, maxsplit=1)[0]
        if top in SERVER_KEYS:
            raise ConfigError(
                f"Override {text!r} is refused: {top!r} configures QFlow itself (trackers, "
                "executors, stores), which only the server's own config decides. "
                "Hint: change the workflow's own keys only."
            )
        if prefix or value is None:
            raise ConfigError(
                f"Override {text!r} is refused: from the dashboard only key=value on an "
                "existing key can be set (no +key or ~key)."
            )
        if "${" in value:
            raise ConfigError(
                f"Override {text!r} is refused: values cannot hold interpolations or "
                "resolvers (${...}) when launched from the dashboard. Hint: type the value."
            )
        if known is not None and top not in known:
            raise ConfigError(
                f"Override {text!r} is refused: the workflow's config has no key {top!r}."
                f"{did_you_mean(top, known)}"
            )
    return list(overrides)


@contextlib.contextmanager
def _environment_hidden() -> Iterator[None]:
    """Resolve ``${oc.env:…}`` (and the legacy ``${env:…}``) to a placeholder while a config
    is composed for a web client, so the server's environment never reaches it."""
    from omegaconf.basecontainer import BaseContainer

    resolvers: dict[str, Any] = BaseContainer._resolvers
    with _RESOLVER_LOCK:
        saved = {name: resolvers.get(name) for name in _ENV_RESOLVERS}
        for name in _ENV_RESOLVERS:
            resolvers[name] = lambda *args, **kwargs: ENV_PLACEHOLDER
        try:
            yield
        finally:
            for name, resolver in saved.items():
                if resolver is None:
                    resolvers.pop(name, None)
                else:
                    resolvers[name] = resolver


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
        from qflow.config.loader import config_file_for, load_config
        from qflow.config.project import find_project

        workflow = self.workflow(name)
        project = find_project(self.project_dir)
        with _environment_hidden():
            known = (
                load_config(workflow.name, [], project.conf_dir)
                if config_file_for(workflow.name, project.conf_dir) is not None
                else None
            )
            checked = check_overrides(overrides or [], known)
            config = load_config(workflow.name, checked, project.conf_dir)
        return {"workflow": workflow.name, "config": config, "fields": flatten(config)}

    def start(self, name: str, overrides: list[str]) -> Launch:
        workflow = self.workflow(name)
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
