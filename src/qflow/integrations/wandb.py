"""The Weights & Biases tracker: a QFlow run as a W&B group, each step as a W&B run in it.

W&B has no nested runs, so the mapping uses its grouping instead:

- project: the workflow's name (or the ``project`` option); group ``<workflow>-<run id>``;
- one W&B run per step run, named like it (``3_FitLogisticRegression``), ``job_type`` the step's
  name, its params (and logged params) as config with their own types (``0.01``, not
  ``"0.01"``), its metrics against a ``qflow_step`` x-axis
  (the QFlow step index, so keys logged out of order keep their own steps), summary
  ``qflow_status``, ``qflow_cache_hit``, ``qflow_duration_s``; exit code 1 when it failed;
- one more W&B run in the group, named ``<workflow>-<run id>`` with ``job_type`` ``workflow``:
  the resolved config, run-level metrics and params, QFlow tags (as ``key:value`` W&B tags) and
  the run's final status;
- figures: PNG files as ``wandb.Image``, HTML as ``wandb.Html``, other files as an artifact.

Runs go to ``.qflow/tracker/wandb`` under the project (the ``dir`` option); the ``mode`` option
(or ``WANDB_MODE``) picks online, offline or disabled. Failures warn once and switch the tracker
off for the rest of the run, like every tracker.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from qflow.errors import ConfigError
from qflow.integrations.failsafe import Failsafe
from qflow.integrations.mlflow import flatten, param_value, recorded_tags, require
from qflow.plugins.markers import hookimpl
from qflow.store.metadata.records import REUSABLE, RunStatus, StepStatus

if TYPE_CHECKING:
    from qflow.graph.model import Graph, Node
    from qflow.store.artifacts import ArtifactRef, ArtifactStore

DEFAULT_DIR = ".qflow/tracker/wandb"
Mode = Literal["online", "offline", "disabled", "shared"]
_MODES = ("online", "offline", "disabled", "shared")
STEP_AXIS = "qflow_step"


class WandbTracker:
    """Sends a run to W&B (see the module docstring for the mapping)."""

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        mode: str | None = None,
        dir: str | None = None,
        *,
        project_root: Path,
        strict: bool = False,
    ) -> None:
        require("wandb", "wandb")
        if mode is not None and mode not in _MODES:
            raise ConfigError(
                f"Tracker 'wandb' option mode is {mode!r}; it must be one of {', '.join(_MODES)}."
            )
        folder = Path(dir or DEFAULT_DIR).expanduser()
        self.dir = folder if folder.is_absolute() else project_root / folder
        self.project = project
        self.entity = entity
        self.mode = cast("Mode | None", mode)
        # W&B's settings errors (pydantic) need every line: the first names no field.
        self.failsafe = Failsafe("W&B", "wandb", entity or "wandb", strict=strict, whole=True)
        self.project_root = project_root
        self.replaying = False
        """True while ``qflow sync`` replays a run: cached steps' records come with it."""
        self._runs: dict[str | None, Any] = {}
        self._group = ""
        self._project = ""
        self._run_id = ""

    def __repr__(self) -> str:
        return f"WandbTracker(dir={str(self.dir)!r})"

    def _init(self, name: str, job_type: str, config: Mapping[str, Any]) -> Any:
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(console="off", quiet=True, silent=True, x_disable_stats=True)
        run = wandb.init(
            id=wandb_run_id(self._run_id, name),
            project=self._project,
            entity=self.entity,
            group=self._group,
            name=name,
            job_type=job_type,
            config=dict(config),
            dir=str(self.dir),
            mode=self.mode,
            reinit="create_new",
            settings=settings,
        )
        run.define_metric(STEP_AXIS)
        run.define_metric("*", step_metric=STEP_AXIS)
        return run

    def _folders(self, run_id: str, names: Sequence[str]) -> dict[str, list[Path]]:
        """Local W&B run folders (offline or online) of ``names`` of QFlow run ``run_id``."""
        found: dict[str, list[Path]] = {}
        for name in names:
            wid = wandb_run_id(run_id, name)
            folders = sorted((self.dir / "wandb").glob(f"*run-*-{wid}"))
            if folders:
                found[name] = folders
        return found

    def synced_runs(self, run_id: str, workflow: str, steps: Sequence[str] = ()) -> list[str]:
        """Local folders of W&B runs already holding QFlow run ``run_id`` (``qflow sync``).

        W&B run ids are derived from the QFlow run and step names, so the folders are found
        by id, in offline and online mode alike (runs synced from another machine are not
        seen)."""
        found = self._folders(run_id, [f"{workflow}-{run_id}", *steps])
        return [str(folder) for folders in found.values() for folder in folders]

    def synced_complete(self, run_id: str, workflow: str, ids: Sequence[str]) -> bool:
        """True when the workflow run of ``run_id`` was finished by this tracker (a marker
        written after its last record; W&B's offline folders have no summary file)."""
        return self._marker(run_id, workflow).is_file()

    def _marker(self, run_id: str, workflow: str) -> Path:
        return self.dir / "qflow-finished" / wandb_run_id(run_id, f"{workflow}-{run_id}")

    def delete_runs(self, ids: Sequence[str]) -> None:
        """Remove local W&B run folders (and the finished marker of their QFlow run)."""
        for folder in ids:
            shutil.rmtree(folder, ignore_errors=True)
            marker = self.dir / "qflow-finished" / Path(folder).name.rpartition("-")[2]
            marker.unlink(missing_ok=True)

    def _run_for(self, step: str | None) -> Any:
        return self._runs.get(step) or self._runs.get(None)

    def _active(self) -> bool:
        return not self.failsafe.disabled and None in self._runs

    @hookimpl
    def before_run(
        self,
        run_id: str,
        workflow: str,
        graph: Graph,
        config: Mapping[str, Any],
        meta: Mapping[str, Any],
        artifacts: ArtifactStore,
    ) -> None:
        self.failsafe.start(run_id)
        self._runs = {}
        self._project = self.project or workflow
        self._group = f"{workflow}-{run_id}"
        self._run_id = run_id
        with self.failsafe.guard("before_run"):
            values = flatten({k: v for k, v in config.items() if k != "tracker"})
            git = meta.get("git")
            values["qflow_run_id"] = run_id
            if isinstance(git, Mapping) and git.get("commit"):
                values["qflow_git_commit"] = git["commit"]
            self._runs[None] = self._init(self._group, "workflow", values)
            tags = recorded_tags(self.project_root, run_id)
            if tags:
                self.on_tags(run_id=run_id, tags=tags)

    @hookimpl
    def before_step(self, run_id: str, node: Node) -> None:
        if self._active() and node.name not in self._runs:
            with self.failsafe.guard("before_step"):
                params = {k: param_value(v) for k, v in node.params}
                config = {"qflow_run_id": run_id, "qflow_step": node.step, **params}
                self._runs[node.name] = self._init(node.name, node.step, config)

    @hookimpl
    def after_step(
        self,
        run_id: str,
        node: Node,
        status: str,
        duration: float,
        error: str | None,
        outputs: Mapping[str, ArtifactRef],
    ) -> None:
        if not self._active():
            return
        with self.failsafe.guard("after_step"):
            if node.name not in self._runs:
                self.before_step(run_id, node)
            if status == StepStatus.CACHED and not self.replaying:
                self._replay_cached(run_id, node.name)
            run = self._runs.pop(node.name)
            run.summary.update(
                {
                    "qflow_status": str(status),  # a StrEnum: W&B would store its name
                    "qflow_cache_hit": status == StepStatus.CACHED,
                    "qflow_duration_s": duration,
                    **({"qflow_error": error} if error else {}),
                }
            )
            run.finish(exit_code=0 if status in REUSABLE else 1)

    def _replay_cached(self, run_id: str, step: str) -> None:
        """A cached step logs nothing itself: send what the store copied from its source."""
        from qflow.client import Client
        from qflow.tracking.sync import replay_cached_step

        reader = Client(self.project_root)
        try:
            replay_cached_step(self, reader, run_id, step)
        finally:
            reader.metadata.dispose()

    @hookimpl
    def after_run(self, run_id: str, status: str, error: str | None) -> None:
        if not self._active():
            return
        with self.failsafe.guard("after_run"):
            for name in [n for n in self._runs if n is not None]:
                self._runs.pop(name).finish(exit_code=1)
            run = self._runs.pop(None)
            run.summary.update(
                {"qflow_status": str(status), **({"qflow_error": error} if error else {})}
            )
            run.finish(exit_code=0 if status == RunStatus.SUCCEEDED else 1)
            marker = self._marker(run_id, self._group.removesuffix(f"-{run_id}"))
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(status, encoding="utf-8")

    @hookimpl
    def on_metrics(
        self, run_id: str, step: str | None, rows: Sequence[tuple[str, float, int | None, float]]
    ) -> None:
        if not self._active():
            return
        with self.failsafe.guard("on_metrics"):
            run = self._run_for(step)
            batch: dict[str, Any] = {}
            batch_step: int | None = None
            for key, value, index, _ in rows:
                if batch and (index != batch_step or key in batch):
                    run.log(batch)
                    batch = {}
                batch_step = index
                batch[key] = value
                if index is not None:
                    batch[STEP_AXIS] = index
            if batch:
                run.log(batch)

    @hookimpl
    def on_params(self, run_id: str, step: str | None, params: Mapping[str, Any]) -> None:
        if self._active():
            with self.failsafe.guard("on_params"):
                self._run_for(step).config.update(dict(params))

    @hookimpl
    def on_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if self._active():
            with self.failsafe.guard("on_tags"):
                run = self._runs[None]
                new = (f"{k}:{v}"[:64] for k, v in tags.items())
                run.tags = tuple(dict.fromkeys((*run.tags, *new)))
                tagged = {**run.config.get("qflow_tags", {}), **tags}
                run.config.update({"qflow_tags": tagged}, allow_val_change=True)

    @hookimpl
    def on_artifact(self, run_id: str, step: str | None, name: str, path: str) -> None:
        if not (self._active() and path):
            return
        with self.failsafe.guard("on_artifact"):
            import wandb

            run = self._run_for(step)
            if name.endswith(".png"):
                run.log({name: wandb.Image(path)})
            elif name.endswith(".html"):
                run.log({name: wandb.Html(Path(path).read_text(encoding="utf-8"))})
            else:
                artifact = wandb.Artifact(_artifact_name(f"{run.name}-{name}"), type="file")
                artifact.add_file(path, name=name)
                run.log_artifact(artifact)


def wandb_run_id(run_id: str, name: str) -> str:
    """The W&B run id of one QFlow step run (or the workflow run): the same every time, so
    a second ``qflow sync`` finds the first one's runs instead of adding new ones."""
    return "q" + hashlib.sha256(f"{run_id}/{name}".encode()).hexdigest()[:24]


def _artifact_name(text: str) -> str:
    """W&B artifact names allow letters, digits, ``-``, ``_`` and ``.``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:128]
