"""The MLflow tracker: a QFlow run as a parent MLflow run, one nested child run per step.

Mapping:

- experiment: the workflow's name (or the ``experiment`` option);
- parent run ``<workflow>-<run id>``: the resolved config as params (dotted keys), run-level
  params/metrics/tags/files, the run's tags (``qflow run --tag k=v``), tags ``qflow.run_id``,
  ``qflow.workflow``, ``qflow.git_commit`` (and MLflow's ``mlflow.source.git.commit``) and the
  final ``qflow.status``; and every metric a step logs, under its own key with its whole step
  history, so MLflow's runs table, chart view and compare work on parent runs alone (the
  latest value is the one shown; a key that several steps log holds all their points);
- child run per step, named like the step run (``3_FitLogisticRegression``), tagged
  ``mlflow.parentRunId``: the step's params and logged params, metrics with their step index,
  ``qflow.status``, ``qflow.cache_hit``, ``qflow.duration_s``, files from ``qf.log_artifact``
  and ``qf.log_figure``; a scikit-learn estimator it returns is logged as an MLflow model
  (sklearn flavor, skops format; requirements scikit-learn and skops pinned, plus mlflow) with
  a signature inferred from the step's inputs, tagged ``qflow.artifact_key``. A cached step's
  child run is linked (as a model output) to the model already logged for that artifact
  instead of logging another copy. A failed step's child run ends FAILED, a skipped one KILLED.

Params are written as MLflow users write them: ``str(value)`` (``site`` → ``A``, not ``"A"``),
so ``search_runs("params.site = 'A'")`` finds them. MLflow's console output ("View run …" and
its logger) goes to QFlow's log (logger ``qflow.integrations.mlflow``/``mlflow``), not to the
terminal under the progress display.

The only module (with ``wandb.py``) that imports mlflow, and only once a run starts. Every hook
body is guarded by :class:`~qflow.integrations.failsafe.Failsafe`: the first failure logs one
warning and switches the tracker off for the rest of the run. HTTP retries are off and the
timeout short (10 s) during a run, unless ``MLFLOW_HTTP_REQUEST_*`` variables are set.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import MissingExtraError
from qflow.integrations.failsafe import Failsafe
from qflow.plugins.markers import hookimpl

if TYPE_CHECKING:
    from qflow.graph.model import Graph, Node
    from qflow.store.artifacts import ArtifactRef, ArtifactStore

logger = logging.getLogger(__name__)

DEFAULT_FOLDER = ".qflow/tracker/mlflow"
_MAX_PARAM = 6000
_MAX_TAG = 5000
_SAMPLE_ROWS = 20
_BATCH = 1000  # MLflow's limit of metrics per log_batch
_STATUS = {"succeeded": "FINISHED", "cached": "FINISHED", "failed": "FAILED"}
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def require(module: str, extra: str) -> None:
    """Raise ``MissingExtraError`` when ``module`` is not installed (without importing it)."""
    try:
        found = importlib.util.find_spec(module)
    except ValueError:
        found = None
    if found is None:
        raise MissingExtraError.for_extra(module, extra)


def resolve_tracking_uri(uri: str | None, project_root: Path) -> tuple[str, Path | None]:
    """The tracking URI to use and, for a local store, its folder (artifacts go inside).

    No URI, or a plain path, means a SQLite store ``mlflow.db`` in that folder (relative paths
    are under the project root; default ``.qflow/tracker/mlflow``). ``sqlite:///rel.db`` is
    made absolute against the project root. Anything else (http, databricks…) is kept.
    """
    if not uri:
        uri = DEFAULT_FOLDER
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        path = path if path.is_absolute() else project_root / path
        return f"sqlite:///{path}", path.parent
    if "://" in uri or uri.startswith(("databricks", "file:", "sqlite:")):
        return uri, None
    folder = Path(uri).expanduser()
    folder = folder if folder.is_absolute() else project_root / folder
    return f"sqlite:///{folder / 'mlflow.db'}", folder


def masked(uri: str) -> str:
    """``uri`` without a password."""
    return re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", uri)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def as_text(value: object, limit: int = _MAX_PARAM) -> str:
    """``str(value)`` (as ``mlflow.log_param`` writes it), cut to ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def param_value(text: str) -> Any:
    """A step parameter's value from its graph form (canonical JSON, else ``repr``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@contextlib.contextmanager
def folded_logging(name: str) -> Iterator[None]:
    """Route logger ``name``'s records to QFlow's handlers (the root logger) instead of the
    handler the library installed on it, which writes under the progress display."""
    library = logging.getLogger(name)
    handlers, propagate = list(library.handlers), library.propagate
    for handler in handlers:
        library.removeHandler(handler)
    library.propagate = True
    try:
        yield
    finally:
        library.propagate = propagate
        for handler in handlers:
            library.addHandler(handler)


@contextlib.contextmanager
def use_registry_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API reads a global registry URI (and ``MLFLOW_REGISTRY_URI``): point it
    at ``uri`` for the block, then put both back."""
    import os

    from mlflow.tracking._model_registry import utils

    previous, env = utils._registry_uri, os.environ.get("MLFLOW_REGISTRY_URI")
    setattr(utils, "_registry_uri", uri)  # noqa: B010 (typed None in mlflow)
    os.environ["MLFLOW_REGISTRY_URI"] = uri
    try:
        yield
    finally:
        utils._registry_uri = previous
        if env is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
        else:
            os.environ["MLFLOW_REGISTRY_URI"] = env


def recorded_tags(project_root: Path, run_id: str) -> dict[str, str]:
    """The tags a run was started with (``qflow run --tag k=v``), read from QFlow's store:
    they are set before ``before_run``, so no ``on_tags`` hook carries them."""
    from qflow.client import Client

    try:
        reader = Client(project_root)
    except Exception as exc:  # no readable store here: later tags still come via on_tags
        logger.debug("run tags of %s not read: %s", run_id, exc)
        return {}
    try:
        return dict(reader.metadata.get_run(run_id).tags)
    except Exception as exc:
        logger.debug("run tags of %s not read: %s", run_id, exc)
        return {}
    finally:
        reader.metadata.dispose()


def _ms(seconds: float | None) -> int:
    return int((time.time() if seconds is None else seconds) * 1000)


class MlflowTracker:
    """Sends a run to MLflow (see the module docstring for the mapping)."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        experiment: str | None = None,
        log_models: bool = True,
        *,
        project_root: Path,
        strict: bool = False,
    ) -> None:
        require("mlflow", "mlflow")
        self.tracking_uri, self.local_folder = resolve_tracking_uri(tracking_uri, project_root)
        self.registry_uri = registry_uri
        self.experiment = experiment
        self.log_models = log_models
        self.failsafe = Failsafe("MLflow", "mlflow", masked(self.tracking_uri), strict=strict)
        self.project_root = project_root
        self.replaying = False
        """True while ``qflow sync`` replays a run: cached steps' records come with it."""
        self._reader: Any = None
        self.times: dict[str | None, tuple[float | None, float | None]] = {}
        """(start, end) by step run name (None: the run) to log instead of now (sync)."""
        self._client: Any = None
        self._experiment_id = ""
        self._parent: str | None = None
        self._children: dict[str, str] = {}
        self._open: set[str] = set()
        self._graph: Graph | None = None
        self._artifacts: ArtifactStore | None = None
        self._refs: dict[tuple[str, str], ArtifactRef] = {}
        self._run_id = ""
        self._folded = contextlib.ExitStack()

    def __repr__(self) -> str:
        return f"MlflowTracker({masked(self.tracking_uri)!r})"

    # -- connection -----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            retries = "2" if self.failsafe.strict else "0"
            self.failsafe.set_env(
                {
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": retries,
                    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
                    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                }
            )
            self._folded.enter_context(folded_logging("mlflow"))

            if self.local_folder is not None:
                self.local_folder.mkdir(parents=True, exist_ok=True)
            # without a registry URI MLflow would use ./mlflow.db for registry calls
            self._client = MlflowClient(self.tracking_uri, self.registry_uri or self.tracking_uri)
        return self._client

    def experiment_id(self, name: str) -> str:
        """The experiment's id, created when missing (with local artifacts for a local store)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = (self.local_folder / "artifacts").as_uri() if self.local_folder else None
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException:
            found = self.client.get_experiment_by_name(name)  # created meanwhile by another run
            if found is None:
                raise
            return str(found.experiment_id)

    def synced_runs(self, run_id: str, workflow: str) -> list[str]:
        """MLflow runs (parent and children) already holding QFlow run ``run_id``."""
        ids: list[str] = []
        with self.failsafe.guard("looking for runs synced before"):
            found = self.client.get_experiment_by_name(self.experiment or workflow)
            if found is not None:
                runs = self.client.search_runs(
                    [found.experiment_id], filter_string=f"tags.`qflow.run_id` = '{run_id}'"
                )
                ids = [r.info.run_id for r in runs]
        return ids

    def synced_complete(self, run_id: str, workflow: str, ids: Sequence[str]) -> bool:
        """True when the runs ``ids`` hold the whole of QFlow run ``run_id``: the parent ended
        with its ``qflow.status`` and no child is still RUNNING (an outage mid-run leaves them
        RUNNING; ``qflow sync`` then replaces that partial copy)."""
        runs = [self.client.get_run(i) for i in ids]
        parents = [r for r in runs if r.data.tags.get("qflow.kind") == "run"]
        return (
            len(parents) == 1
            and "qflow.status" in parents[0].data.tags
            and all(r.info.status != "RUNNING" for r in runs)
        )

    def delete_runs(self, ids: Sequence[str]) -> None:
        with self.failsafe.guard("deleting runs synced before"):
            for mlflow_run_id in ids:
                self.client.delete_run(mlflow_run_id)

    # -- run lifecycle --------------------------------------------------------------------

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
        self._run_id, self._graph, self._artifacts = run_id, graph, artifacts
        self._parent, self._children, self._open, self._refs = None, {}, set(), {}
        with self.failsafe.guard("before_run"):
            from mlflow.entities import Param

            self._experiment_id = self.experiment_id(self.experiment or workflow)
            tags = {"qflow.run_id": run_id, "qflow.workflow": workflow, "qflow.kind": "run"}
            git = meta.get("git")
            commit = git.get("commit") if isinstance(git, Mapping) else meta.get("git_commit")
            if commit:
                tags.update({"qflow.git_commit": str(commit), "mlflow.source.git.commit": commit})
            run = self.client.create_run(
                self._experiment_id,
                start_time=_ms(self.times.get(None, (None, None))[0]),
                tags=tags,
                run_name=f"{workflow}-{run_id}",
            )
            self._parent = run.info.run_id
            params = flatten({k: v for k, v in config.items() if k != "tracker"})
            self.client.log_batch(
                self._parent, params=[Param(k[:250], as_text(v)) for k, v in params.items()]
            )
            run_tags = recorded_tags(self.project_root, run_id)
            if run_tags:
                self._set_tags(self._parent, run_tags)

    @hookimpl
    def after_run(self, run_id: str, status: str, error: str | None) -> None:
        try:
            if self.failsafe.disabled or self._parent is None:
                return
            with self.failsafe.guard("after_run"):
                end = _ms(self.times.get(None, (None, None))[1])
                for name in sorted(self._open):
                    self.client.set_terminated(self._children[name], "KILLED", end_time=end)
                self._open.clear()
                tags = {"qflow.status": status}
                if error:
                    tags["qflow.error"] = as_text(error, _MAX_TAG)
                self._set_tags(self._parent, tags)
                final = "FINISHED" if status == "succeeded" else "FAILED"
                self.client.set_terminated(self._parent, final, end_time=end)
                if self.tracking_uri.startswith(("http://", "https://")):
                    logger.info(
                        "MLflow run of %s: %s/#/experiments/%s/runs/%s",
                        run_id,
                        masked(self.tracking_uri).rstrip("/"),
                        self._experiment_id,
                        self._parent,
                    )
        finally:
            self.close()

    def close(self) -> None:
        """Forget the connection; put back the environment variables set for it."""
        self._client = None
        self.failsafe.restore_env()
        self._folded.close()
        if self._reader is not None:
            self._reader.metadata.dispose()
            self._reader = None

    # -- steps ----------------------------------------------------------------------------

    def _active(self) -> bool:
        return not self.failsafe.disabled and self._parent is not None

    def _child(self, node: Node) -> str:
        if node.name in self._children:
            return self._children[node.name]
        from mlflow.entities import Param

        run = self.client.create_run(
            self._experiment_id,
            start_time=_ms(self.times.get(node.name, (None, None))[0]),
            tags={
                "mlflow.parentRunId": self._parent or "",
                "qflow.run_id": self._run_id,
                "qflow.step": node.step,
                "qflow.position": str(node.position),
                "qflow.kind": "step",
            },
            run_name=node.name,
        )
        child: str = run.info.run_id
        self._children[node.name] = child
        self._open.add(node.name)
        if node.params:
            params = [Param(k, as_text(param_value(v))) for k, v in node.params]
            self.client.log_batch(child, params=params)
        return child

    def _target(self, step: str | None) -> str:
        """The child run of step run ``step``, or the parent for run-level records."""
        parent = self._parent or ""
        return self._children.get(step, parent) if step is not None else parent

    @hookimpl
    def before_step(self, run_id: str, node: Node) -> None:
        if self._active():
            with self.failsafe.guard("before_step"):
                self._child(node)

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
        for output, ref in outputs.items():
            self._refs[(node.name, output)] = ref
        if not self._active():
            return
        with self.failsafe.guard("after_step"):
            child = self._child(node)
            tags = {
                "qflow.status": status,
                "qflow.cache_hit": str(status == "cached").lower(),
                "qflow.duration_s": f"{duration:.6f}",
            }
            if error:
                tags["qflow.error"] = as_text(error, _MAX_TAG)
            self._set_tags(child, tags)
            if status == "cached" and not self.replaying:
                self._replay_cached(node.name)
            if status in ("succeeded", "cached") and self.log_models:
                try:
                    self._log_models(node, outputs, child, cached=status == "cached")
                except Exception as exc:  # a model that will not log is not an outage
                    if self.failsafe.strict:
                        raise
                    logger.warning(
                        "MLflow: the model of step %s was not logged: %s", node.name, exc
                    )
            end = _ms(self.times.get(node.name, (None, None))[1])
            self.client.set_terminated(child, _STATUS.get(status, "KILLED"), end_time=end)
            self._open.discard(node.name)

    # -- what steps log -------------------------------------------------------------------

    @hookimpl
    def on_metrics(
        self, run_id: str, step: str | None, rows: Sequence[tuple[str, float, int | None, float]]
    ) -> None:
        if not self._active():
            return
        with self.failsafe.guard("on_metrics"):
            from mlflow.entities import Metric

            metrics = [
                Metric(key, value, int(ts * 1000), 0 if index is None else index)
                for key, value, index, ts in rows
            ]
            targets = [self._target(step)]
            if step is not None and self._parent is not None:
                targets.append(self._parent)  # MLflow's runs table and charts read parents
            for target in targets:
                for start in range(0, len(metrics), _BATCH):
                    self.client.log_batch(target, metrics=metrics[start : start + _BATCH])

    @hookimpl
    def on_params(self, run_id: str, step: str | None, params: Mapping[str, Any]) -> None:
        if not self._active() or not params:
            return
        with self.failsafe.guard("on_params"):
            from mlflow.entities import Param

            values = [Param(k, as_text(v)) for k, v in params.items()]
            self.client.log_batch(self._target(step), params=values)

    @hookimpl
    def on_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if self._active() and tags:
            with self.failsafe.guard("on_tags"):
                self._set_tags(self._target(None), tags)

    @hookimpl
    def on_artifact(self, run_id: str, step: str | None, name: str, path: str) -> None:
        if self._active() and path:
            with self.failsafe.guard("on_artifact"):
                self._log_file(self._target(step), name, Path(path))

    def _replay_cached(self, step: str) -> None:
        """A cached step logs nothing itself: send what the store copied from its source."""
        from qflow.client import Client
        from qflow.tracking.sync import replay_cached_step

        if self._reader is None:
            self._reader = Client(self.project_root)
        replay_cached_step(self, self._reader, self._run_id, step)

    def _set_tags(self, run: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        values = [RunTag(k, as_text(v, _MAX_TAG)) for k, v in tags.items()]
        self.client.log_batch(run, tags=values)

    def _log_file(self, run: str, name: str, source: Path) -> None:
        """Log the stored bytes under their label; a stored folder (a tar) as a folder."""
        folder, _, base = name.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="qflow-mlflow-") as tmp:
            target = Path(tmp) / base
            if not name.endswith(_TAR_SUFFIXES) and tarfile.is_tarfile(source):
                with tarfile.open(source, mode="r:") as tar:
                    tar.extractall(target, filter="data")
                self.client.log_artifacts(run, str(target), artifact_path=name)
            else:
                shutil.copyfile(source, target)
                self.client.log_artifact(run, str(target), artifact_path=folder or None)

    # -- models ---------------------------------------------------------------------------

    def _log_models(
        self, node: Node, outputs: Mapping[str, ArtifactRef], child: str, *, cached: bool
    ) -> None:
        """Log each scikit-learn estimator among the outputs as an MLflow model, or link the
        child run to the model already logged for the same artifact (a cached step)."""
        sklearn_outputs = {k: r for k, r in outputs.items() if r.type_name.startswith("sklearn.")}
        if not sklearn_outputs or self._artifacts is None:
            return
        for output, ref in sklearn_outputs.items():
            name = "model" if len(outputs) == 1 else f"model_{output}"
            if cached and self._link_logged_model(ref.key, child):
                continue
            model = self._artifacts.get(ref)
            self._log_model(node, model, name, ref.key, child)

    def _link_logged_model(self, key: str, child: str) -> bool:
        """Record on ``child`` the model logged before for artifact ``key``, if there is one."""
        from mlflow.entities import LoggedModelOutput

        found = self.client.search_logged_models(
            [self._experiment_id],
            filter_string=f"tags.`qflow.artifact_key` = '{key}'",
            max_results=1,
        )
        if not found:
            return False
        model = found[0]
        self.client.log_outputs(child, [LoggedModelOutput(model.model_id, 0)])
        self._set_tags(
            child,
            {"qflow.model_id": model.model_id, "qflow.model_source_run": model.source_run_id},
        )
        return True

    def _log_model(self, node: Node, model: Any, name: str, key: str, child: str) -> None:
        import mlflow
        import mlflow.sklearn
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri
        from sklearn.base import BaseEstimator

        if not isinstance(model, BaseEstimator):
            return
        signature = self._signature(node, model)
        with (
            _use_tracking_uri(self.tracking_uri),
            use_registry_uri(self.registry_uri or self.tracking_uri),
            mlflow.start_run(run_id=child, nested=True),
        ):
            info = mlflow.sklearn.log_model(
                model,
                name=name,
                signature=signature,
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
                tags={"qflow.artifact_key": key, "qflow.run_id": self._run_id},
            )
        self._set_tags(child, {"qflow.model_id": info.model_id})

    def _signature(self, node: Node, model: Any) -> Any:
        """Best effort: the signature of ``model.predict`` on a sample of a 2-D input."""
        if self._graph is None or self._artifacts is None or not hasattr(model, "predict"):
            return None
        for edge in self._graph.inputs_of(node.name):
            ref = self._refs.get((edge.source, edge.output))
            if ref is None:
                continue
            try:
                sample = _sample(self._artifacts.get(ref))
                if sample is None:
                    continue
                from mlflow.models import infer_signature

                return infer_signature(sample, model.predict(sample))
            except Exception as exc:
                logger.debug("no signature from %s.%s: %s", edge.source, edge.output, exc)
        return None


def _sample(value: object) -> Any:
    """The first rows of a DataFrame or 2-D array, else None."""
    shape = getattr(value, "shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2:
        return None
    head = getattr(value, "head", None)
    if callable(head):
        return head(_SAMPLE_ROWS)
    return value[:_SAMPLE_ROWS]  # type: ignore[index]
