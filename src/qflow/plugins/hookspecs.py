"""Every hook a QFlow plugin can implement, in one place.

A plugin is a module or an object with functions marked ``@qflow.plugins.hookimpl``, installed
under the entry-point group ``qflow``::

    # the plugin package's pyproject.toml
    [project.entry-points.qflow]
    my_plugin = "my_package.plugin"

QFlow's own built-ins are registered the same way, by ``qflow-framework``'s entry points:
``builtin`` (``qflow.plugins.builtin``: the ``filetracker`` tracker and the serializers),
``builtin-executors`` (``local``, ``parallel``, ``ray``), ``builtin-trackers`` (``mlflow``,
``wandb``) and ``builtin-registries`` (``builtin``, ``mlflow``). ``qflow plugins`` lists what is
loaded and where it comes from; ``qflow.plugins.registry.plugin_registry()`` looks extensions up
by name. A plugin that cannot be imported is reported once by name as a warning, and QFlow
starts without it.

Two kinds of hooks:

- **Extensions** (``register_*``, no arguments) return what the plugin adds, by name: trackers,
  executors, serializers, model registries, CLI commands. They are called on the driver when
  QFlow looks something up; the first plugin to provide a name keeps it (built-ins first).
- **Events** (``RunSpecs``, ``StepSpecs``) tell plugins what happens in a run: run start/end,
  step start/end and every log call. They run on the driver (the process that owns the run),
  even when steps run in worker processes. A hook that raises is logged as a warning and never
  fails the run.

pluggy always passes arguments by keyword.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qflow.plugins.markers import hookspec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from qflow.graph.model import Graph, Node
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.metadata.records import StepOutcome
    from qflow.store.serializers import Serializer


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
        outcome: StepOutcome,
    ) -> None:
        """Called when a step has finished (succeeded, failed, cached or skipped).

        ``outcome`` is the whole record the store was given (status, outputs, inputs, cache
        source and reason, error, traceback, times, attempts). The other arguments are parts
        of it, kept so that implementations written before ``outcome`` existed still work: an
        implementation names only the arguments it wants.

        Args:
            run_id: the run's id.
            node: the graph node of the step call.
            status: the step run's final status (a ``StepStatus``, which is a ``str``).
            duration: seconds the step took (0 for cached and skipped steps).
            error: the error message when the step failed.
            outputs: the step's outputs by name (load one with ``artifacts.get(ref)``).
            outcome: the step run's ``StepOutcome``, as recorded in the metadata store.
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


class TrackerSpecs:
    """Trackers: where a run's params, metrics and artifacts are sent besides QFlow's store."""

    @hookspec
    def register_trackers(self) -> Mapping[str, Callable[..., object]] | None:
        """Trackers this plugin provides, by name (driver).

        A run's config chooses trackers with its ``tracker`` key: a name, a list of names, a
        mapping ``{name: mlflow, tracking_uri: ..., registry_uri: ...}`` or a list of mappings.
        QFlow calls the factory with the mapping's other keys as keyword arguments and
        registers the object it returns as a plugin for the run, so its ``RunSpecs`` and
        ``StepSpecs`` hookimpls receive the run's events.

        Returns:
            name → factory(**options) returning the tracker object.
        """


class ExecutorSpecs:
    """Executors: where step tasks run."""

    @hookspec
    def register_executors(self) -> Mapping[str, Callable[..., object]] | None:
        """Executors this plugin provides, by name (driver).

        ``qflow run --executor NAME`` (or the config's ``executor.name``) picks one. The
        factory is called with the executor config's other keys (``workers: 4``) and returns
        an object with the ``qflow.runtime.executor.Executor`` interface: ``name``,
        ``start(artifacts, sinks)``, ``submit(task) -> Future`` (resolved the moment the task
        ends), ``can_submit()`` and ``shutdown()``.

        Returns:
            name → factory(**options) returning the executor.
        """


class ArtifactSpecs:
    """Serializers: how step outputs of a type become bytes in the artifact store."""

    @hookspec
    def register_serializers(self) -> Sequence[Serializer] | None:
        """Serializers this plugin provides (called once per process, driver and workers, when
        the process first stores or loads an artifact).

        Each has ``name``, ``version``, ``pickled``, ``matches(value)``, ``dump(value, sink)``
        and ``load(source)`` (``qflow.store.serializers.Serializer``). They are tried after
        QFlow's specific formats (numpy, Parquet, JSON, bytes, files) and before pickle, so a
        plugin gives its own types a real format. ``name`` is recorded with each artifact and
        must be unique; ``version`` is part of every step's cache key.

        Returns:
            serializer instances.
        """


class RegistrySpecs:
    """Model registries: where registered model versions and their aliases live."""

    @hookspec
    def register_model_registries(self) -> Mapping[str, Callable[..., object]] | None:
        """Model registries this plugin provides, by name (driver).

        A project picks one with its tracker config's ``registry_uri`` or the registry's name;
        the factory gets the registry config's other keys as keyword arguments.

        Returns:
            name → factory(**options) returning the registry client.
        """


class CLISpecs:
    """Commands added to the ``qflow`` command line."""

    @hookspec
    def register_commands(self) -> Mapping[str, object] | None:
        """Commands this plugin adds to ``qflow`` (driver, when the CLI starts).

        A value is either a function, which becomes ``qflow NAME`` (typer reads its signature
        and docstring, as for QFlow's own commands), or a ``typer.Typer`` app, which becomes a
        group ``qflow NAME SUBCOMMAND``. A name QFlow already uses is refused with a warning.

        Returns:
            command name → function or ``typer.Typer``.
        """


ALL_SPECS = (
    RunSpecs,
    StepSpecs,
    TrackerSpecs,
    ExecutorSpecs,
    ArtifactSpecs,
    RegistrySpecs,
    CLISpecs,
)
"""Every spec class, in the order the manager adds them."""
