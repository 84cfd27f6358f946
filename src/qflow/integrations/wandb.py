"""The Weights & Biases tracker: a QFlow run as a W&B group, each step as a W&B run in it.

W&B has no nested runs, so the mapping uses its grouping instead:

- project: the workflow's name (or the ``project`` option); group ``<workflow>-<run id>``;
- one W&B run per step run, named like it (``3_FitLogisticRegression``), ``job_type`` the step's
  name, its params (and logged params) as config, its metrics against a ``qflow_step`` x-axis
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

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from qflow.errors import ConfigError
from qflow.integrations.failsafe import Failsafe
from qflow.integrations.mlflow import flatten, require
from qflow.plugins.markers import hookimpl

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
        self.failsafe = Failsafe("W&B", "wandb", entity or "wandb", strict=strict)
        self.project_root = project_root
        self.replaying = False
        """True while ``qflow sync`` replays a run: cached steps' records come with it."""
        self._runs: dict[str | None, Any] = {}
        self._group = ""
        self._project = ""

    def __repr__(self) -> str:
        return f"WandbTracker(dir={str(self.dir)!r})"

    def _init(self, name: str, job_type: str, config: Mapping[str, Any]) -> Any:
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(console="off", quiet=True, silent=True, x_disable_stats=True)
        run = wandb.init(
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
        with self.failsafe.guard("before_run"):
            values = flatten({k: v for k, v in config.items() if k != "tracker"})
            git = meta.get("git")
            values["qflow_run_id"] = run_id
            if isinstance(git, Mapping) and git.get("commit"):
                values["qflow_git_commit"] = git["commit"]
            self._runs[None] = self._init(self._group, "workflow", values)

    @hookimpl
    def before_step(self, run_id: str, node: Node) -> None:
        if self._active() and node.name not in self._runs:
            with self.failsafe.guard("before_step"):
                config = {"qflow_run_id": run_id, "qflow_step": node.step, **dict(node.params)}
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
            if status == "cached" and not self.replaying:
                self._replay_cached(run_id, node.name)
            run = self._runs.pop(node.name)
            run.summary.update(
                {
                    "qflow_status": status,
                    "qflow_cache_hit": status == "cached",
                    "qflow_duration_s": duration,
                    **({"qflow_error": error} if error else {}),
                }
            )
            run.finish(exit_code=0 if status in ("succeeded", "cached") else 1)

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
                {"qflow_status": status, **({"qflow_error": error} if error else {})}
            )
            run.finish(exit_code=0 if status == "succeeded" else 1)

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
                run.tags = (*run.tags, *(f"{k}:{v}"[:64] for k, v in tags.items()))
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


def _artifact_name(text: str) -> str:
    """W&B artifact names allow letters, digits, ``-``, ``_`` and ``.``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:128]
