"""Hooks QFlow calls during a run. All run on the driver (the process that owns the run).

pluggy always passes arguments by keyword. A tracking hook that raises is logged as a
warning and never fails the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qflow.plugins.markers import hookspec

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from qflow.graph.model import Graph, Node
    from qflow.store.artifacts import ArtifactRef, ArtifactStore


class RunSpecs:
    """Run lifecycle."""

    @hookspec
    def before_run(
        self,
        run_id: str,
        workflow: str,
        graph: Graph,
        config: Mapping[str, Any],
        meta: Mapping[str, Any],
        artifacts: ArtifactStore,
    ) -> None:
        """Called once the run is recorded, before its first step starts.

        Args:
            run_id: the new run's id.
            workflow: the workflow's name.
            graph: the traced graph (read-only).
            config: the resolved config.
            meta: what the run recorded about its environment (versions, git commit, host).
            artifacts: the artifact store, to load step outputs given in ``after_step``.
        """

    @hookspec
    def after_run(self, run_id: str, status: str, error: str | None) -> None:
        """Called when the run ends, whatever its status (succeeded, failed).

        Args:
            run_id: the run's id.
            status: the final status.
            error: the error message when the run failed.
        """


class StepSpecs:
    """Step lifecycle and what steps log."""

    @hookspec
    def before_step(self, run_id: str, node: Node) -> None:
        """Called when a step is submitted to the executor.

        Args:
            run_id: the run's id.
            node: the graph node of the step call.
        """

    @hookspec
    def after_step(
        self,
        run_id: str,
        node: Node,
        status: str,
        duration: float,
        error: str | None,
        outputs: Mapping[str, ArtifactRef],
    ) -> None:
        """Called when a step has finished (succeeded, failed, cached or skipped).

        Args:
            run_id: the run's id.
            node: the graph node of the step call.
            status: the step run's final status.
            duration: seconds the step took (0 for cached and skipped steps).
            error: the error message when the step failed.
            outputs: the step's outputs by name (load one with ``artifacts.get(ref)``).
        """

    @hookspec
    def on_metrics(
        self, run_id: str, step: str | None, rows: Sequence[tuple[str, float, int | None, float]]
    ) -> None:
        """Called with each batch of metrics as it is written to the store.

        Args:
            run_id: the run's id.
            step: the step run name, or None for run-level metrics.
            rows: (key, value, step index, timestamp) tuples.
        """

    @hookspec
    def on_params(self, run_id: str, step: str | None, params: Mapping[str, Any]) -> None:
        """Called when parameters are logged.

        Args:
            run_id: the run's id.
            step: the step run name, or None for run-level params.
            params: the logged parameters.
        """

    @hookspec
    def on_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Called when tags are set on a run.

        Args:
            run_id: the run's id.
            tags: the tags set.
        """

    @hookspec
    def on_artifact(self, run_id: str, step: str | None, name: str, path: str) -> None:
        """Called when a file is logged with ``qf.log_artifact`` or ``qf.log_figure``.

        Args:
            run_id: the run's id.
            step: the step run name, or None.
            name: the artifact's label.
            path: a local path to the stored bytes.
        """
