"""MLflow's tracking REST API over QFlow's stores: ``MLFLOW_TRACKING_URI=http://<qflow server>``.

An unchanged script using ``mlflow`` (fluent API or ``MlflowClient``) logs into QFlow: its runs
appear in ``qflow runs``, ``qf.Client`` and the dashboard beside workflow runs. Token auth is
the server's: ``MLFLOW_TRACKING_TOKEN`` sends the ``Authorization: Bearer`` header it checks.

Mapping: an MLflow experiment is a QFlow workflow (its id is its name; experiment ``"0"`` is
``Default``); an MLflow run is a QFlow run with run-level params, tags and metrics (``step``
and timestamp kept; the run name is the ``mlflow.runName`` tag); artifacts are logged artifacts
of the run (``mlflow-artifacts:/<run id>/artifacts/<path>``, served by the proxied artifact
routes). A QFlow workflow run read through this API shows its resolved config as params too.

Supported (``/api/2.0/mlflow/…``): ``experiments/create|get|get-by-name|search``,
``runs/create|get|update|search|delete|restore|log-metric|log-parameter|set-tag|log-batch``,
``metrics/get-history``, ``logged-models/search`` (always empty),
``registered-models/get|search`` and ``model-versions/get|search`` (reading QFlow's registry;
versions are registered from runs with ``qflow models register``); ``/api/2.0/mlflow-artifacts/
artifacts`` list, upload (PUT) and download (GET). Anything else answers 501 naming the
endpoint. An experiment created before its first run is recorded in the metadata store
(``create_experiment``), so it outlives a restart and every server process over the same store
sees it. Differences from ``mlflow server``: deleting a RUNNING run ends it KILLED first (QFlow
never deletes a running run); a running MLflow run that writes nothing for 120 s is marked
crashed by QFlow's liveness check (writes are its heartbeat); ``start_time`` is when QFlow
recorded the run; search filters support ``and`` of ``metrics.|params.|tags.|attributes.``
comparisons (=, !=, <, <=, >, >=, LIKE, ILIKE).
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from qflow.web.context import context

if TYPE_CHECKING:
    from qflow.store.contract import MetricRow
    from qflow.store.metadata.records import Experiment, Metric, Run
    from qflow.web.context import Context

router = APIRouter(include_in_schema=False)
API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
DEFAULT_EXPERIMENT = "Default"
_STATUS_TO_MLFLOW = {
    "running": "RUNNING",
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "crashed": "FAILED",
    "killed": "KILLED",
}
_STATUS_FROM_MLFLOW = {"FINISHED": "succeeded", "FAILED": "failed", "KILLED": "killed"}
_HTTP = {
    "RESOURCE_DOES_NOT_EXIST": 404,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "ENDPOINT_NOT_FOUND": 501,
}


class MlflowApiError(Exception):
    """An answer in MLflow's error format: ``{"error_code": ..., "message": ...}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _reply(body: dict[str, Any] | None = None, status: int = 200) -> Response:
    return Response(json.dumps(body or {}), status_code=status, media_type="application/json")


def _error(exc: MlflowApiError) -> Response:
    body = {"error_code": exc.code, "message": exc.message}
    return _reply(body, _HTTP.get(exc.code, 400))


def _handled(call: Callable[[], dict[str, Any] | Response]) -> Response:
    """Run an endpoint body; QFlow's user errors become MLflow's error answers."""
    from qflow.errors import InvalidValueError, NotFoundError, QFlowError

    try:
        result = call()
    except MlflowApiError as exc:
        return _error(exc)
    except NotFoundError as exc:
        return _error(MlflowApiError("RESOURCE_DOES_NOT_EXIST", str(exc)))
    except (InvalidValueError, QFlowError) as exc:
        return _error(MlflowApiError("INVALID_PARAMETER_VALUE", str(exc)))
    return result if isinstance(result, Response) else _reply(result)


async def _body(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        query: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, []).append(value)
        return {k: v[0] if len(v) == 1 else v for k, v in query.items()}
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise MlflowApiError("MALFORMED_REQUEST", f"The body is not JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise MlflowApiError("MALFORMED_REQUEST", "The body must be a JSON object.")
    return data


def _required(body: dict[str, Any], key: str) -> Any:
    value = body.get(key)
    if value in (None, ""):
        raise MlflowApiError("INVALID_PARAMETER_VALUE", f"Missing value for required '{key}'.")
    return value


# -- experiments ------------------------------------------------------------------------------


def _workflow(experiment_id: str) -> str:
    return DEFAULT_EXPERIMENT if str(experiment_id) == "0" else str(experiment_id)


def _experiment_id(name: str) -> str:
    return "0" if name == DEFAULT_EXPERIMENT else name


def _recorded(ctx: Context) -> dict[str, Experiment]:
    """Experiments by name: those created through this API (in the store) and ``Default``."""
    from qflow.store.metadata.records import Experiment

    found = {DEFAULT_EXPERIMENT: Experiment(DEFAULT_EXPERIMENT, {}, 0.0)}
    found.update((e.name, e) for e in ctx.metadata.experiments())
    return found


def _experiment(
    ctx: Context, name: str, recorded: dict[str, Experiment] | None = None
) -> dict[str, Any]:
    """MLflow's view of experiment ``name``: a recorded experiment or a workflow with runs."""
    recorded = _recorded(ctx) if recorded is None else recorded
    entry = recorded.get(name)
    if entry is None and name not in ctx.metadata.workflows():
        raise MlflowApiError("RESOURCE_DOES_NOT_EXIST", f"No experiment named {name!r}.")
    millis = int(entry.created_at * 1000) if entry is not None else 0
    return {
        "experiment_id": _experiment_id(name),
        "name": name,
        "artifact_location": f"mlflow-artifacts:/experiments/{name}",
        "lifecycle_stage": "active",
        "creation_time": millis,
        "last_update_time": millis,
        "tags": [{"key": k, "value": v} for k, v in (entry.tags if entry else {}).items()],
    }


# -- runs -------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _latest(metrics: Iterable[Metric]) -> dict[str, Metric]:
    """MLflow's latest value per key: largest step, then timestamp, then value."""
    latest: dict[str, Metric] = {}
    for m in metrics:
        if m.step_run_id is not None:
            continue
        old = latest.get(m.key)
        if old is None or _order(m) >= _order(old):
            latest[m.key] = m
    return latest


def _order(m: Metric) -> tuple[int, float, float]:
    value = -math.inf if math.isnan(m.value) else m.value
    return (m.step or 0, m.timestamp, value)


def _number(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _metric_json(m: Metric) -> dict[str, Any]:
    return {
        "key": m.key,
        "value": _number(m.value),
        "timestamp": int(m.timestamp * 1000),
        "step": m.step or 0,
    }


def _params(run: Run) -> dict[str, str]:
    from qflow.integrations.mlflow import flatten

    params = {k: str(v) for k, v in flatten(run.config).items() if k != "tracker"}
    params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in run.params.items()})
    return params


def _run_json(ctx: Context, run: Run) -> dict[str, Any]:
    name = run.tags.get("mlflow.runName") or f"{run.workflow}-{run.id}"
    info = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": name,
        "experiment_id": _experiment_id(run.workflow),
        "user_id": run.tags.get("mlflow.user") or run.user or "",
        "status": _STATUS_TO_MLFLOW.get(str(run.status), "FAILED"),
        "start_time": _ms(run.created_at),
        "artifact_uri": f"mlflow-artifacts:/{run.id}/artifacts",
        "lifecycle_stage": "deleted" if run.deleted_at is not None else "active",
    }
    if run.ended_at is not None:
        info["end_time"] = _ms(run.ended_at)
    latest = _latest(ctx.metadata.metrics(run.id))
    return {
        "info": info,
        "data": {
            "metrics": [_metric_json(m) for m in latest.values()],
            "params": [{"key": k, "value": v} for k, v in _params(run).items()],
            "tags": [
                {"key": k, "value": v} for k, v in {**run.tags, "mlflow.runName": name}.items()
            ],
        },
        "inputs": {},
    }


def _run(ctx: Context, run_id: str) -> Run:
    """Run ``run_id`` without its metrics summary (MLflow's latest values are read apart, and
    the summary's query reads every metric of the run, on every write)."""
    from qflow.errors import NotFoundError

    try:
        run = ctx.metadata.get_run(str(run_id), summary=False)
    except NotFoundError as exc:
        raise MlflowApiError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.") from exc
    if run.id != run_id:  # get_run takes a prefix; MLflow wants the exact id
        raise MlflowApiError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.")
    return run


HEARTBEAT_EVERY = 10.0
"""Seconds between two heartbeats of one run from this server process. Each write keeps a
running run alive (MLflow clients send no heartbeat; QFlow marks a run silent for 120 s
crashed), and one heartbeat per write would double the commits of a logging run."""


def _touch(request: Request, ctx: Context, run: Run) -> None:
    """A write keeps a running run alive: a heartbeat unless one was sent just before."""
    if run.status != "running":
        return
    state = request.app.state
    if not hasattr(state, "mlflow_heartbeats"):
        state.mlflow_heartbeats = {}
    sent: dict[str, float] = state.mlflow_heartbeats
    now = time.monotonic()
    if now - sent.get(run.id, -math.inf) < HEARTBEAT_EVERY:
        return
    if len(sent) > 10_000:  # a forgotten run costs one more heartbeat, nothing else
        sent.clear()
    sent[run.id] = now
    ctx.metadata.heartbeat(run.id)


def _entries(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """``body[name]`` (MLflow's metrics, params or tags): a list of objects with a key."""
    items = body.get(name) or []
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and item.get("key") not in (None, "") for item in items
    ):
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"'{name}' must be a list of objects, each with a non-empty 'key'.",
        )
    return items


def _tags(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items or ()}


def _metric_rows(run_id: str, metrics: list[dict[str, Any]]) -> list[MetricRow]:
    """Store rows of MLflow metrics (step 0 and now when missing; int64 fields may come as
    strings, as protobuf's JSON writes them); a bad entry is a 400 naming it."""
    now = time.time() * 1000
    try:
        return [
            (
                run_id,
                None,
                str(m["key"]),
                float(m["value"]),
                int(m.get("step") or 0),
                int(m.get("timestamp") or now) / 1000,
            )
            for m in metrics
        ]
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise _bad_metric(metrics, exc) from None


_METRIC_FIELDS: tuple[tuple[str, Callable[[Any], object]], ...] = (
    ("value", float),
    ("step", int),
    ("timestamp", int),
)


def _bad_metric(metrics: list[dict[str, Any]], exc: Exception) -> MlflowApiError:
    """The 400 naming the first metric that does not convert."""
    for index, metric in enumerate(metrics):
        for field, convert in _METRIC_FIELDS:
            value = metric.get(field) if field == "value" else metric.get(field) or 0
            try:
                convert(value)
            except (TypeError, ValueError, OverflowError):
                kind = "number" if field == "value" else "whole number"
                return MlflowApiError(
                    "INVALID_PARAMETER_VALUE",
                    f"Metric {index} ({metric['key']!r}): {field} {value!r} is not a {kind}.",
                )
    return MlflowApiError("INVALID_PARAMETER_VALUE", f"The metrics do not convert: {exc}.")


def _log(request: Request, ctx: Context, run_id: str, body: dict[str, Any]) -> None:
    """Log a body's ``metrics``, ``params`` and ``tags`` (each optional) to an active run."""
    metrics, params, tags = (_entries(body, n) for n in ("metrics", "params", "tags"))
    rows = _metric_rows(run_id, metrics)
    run = _run(ctx, run_id)
    if run.deleted_at is not None:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE", f"The run {run_id} must be in the 'active' state."
        )
    if params:
        ctx.metadata.log_params(run.id, {str(p["key"]): str(p.get("value", "")) for p in params})
    if tags:
        ctx.metadata.set_tags(run.id, _tags(tags))
    if rows:
        ctx.metadata.log_metrics(rows)
    _touch(request, ctx, run)


# -- search -----------------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"""\s*(?P<entity>[A-Za-z_]+)\.(?P<key>`[^`]+`|"[^"]+"|[\w.\-/ ]+?)\s*
    (?P<op>!=|>=|<=|=|>|<|\bNOT\s+ILIKE\b|\bNOT\s+LIKE\b|\bILIKE\b|\bLIKE\b)\s*
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[-+]?[\w.]+)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_ENTITIES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
}


def _clauses(text: str) -> list[tuple[str, str, str, Any]]:
    found = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if text.strip() else []:
        match = _CLAUSE.match(part)
        entity = _ENTITIES.get(match["entity"].lower()) if match else None
        if match is None or entity is None:
            raise MlflowApiError(
                "INVALID_PARAMETER_VALUE",
                f"Invalid filter {part.strip()!r}. Hint: write comparisons such as "
                "metrics.acc > 0.9, params.site = 'A', tags.k != 'v' joined by 'and'.",
            )
        key = match["key"].strip().strip('`"')
        raw = match["value"]
        value: Any = raw[1:-1] if raw[:1] in "'\"" else float(raw)
        found.append((entity, key, " ".join(match["op"].upper().split()), value))
    return found


def _like(pattern: str, text: str, *, fold: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL if fold else re.DOTALL) is not None


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if actual is None:
        return False
    if op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
        matched = _like(str(expected), str(actual), fold="ILIKE" in op)
        return matched != op.startswith("NOT")
    if isinstance(expected, float):
        try:
            actual = float(actual)
        except (TypeError, ValueError):
            return False
    else:
        actual = str(actual)
    checks: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: bool(a == b),
        "!=": lambda a, b: bool(a != b),
        ">": lambda a, b: bool(a > b),
        ">=": lambda a, b: bool(a >= b),
        "<": lambda a, b: bool(a < b),
        "<=": lambda a, b: bool(a <= b),
    }
    return checks[op](actual, expected)


def _field(view: dict[str, Any], entity: str, key: str) -> Any:
    if entity == "attributes":
        info = view["info"]
        aliases = {"run_name": "run_name", "status": "status", "run_id": "run_id"}
        aliases.update({"start_time": "start_time", "end_time": "end_time", "user_id": "user_id"})
        return info.get(aliases.get(key, key))
    items = {i["key"]: i["value"] for i in view["data"][entity]}
    value = items.get(key)
    if entity == "metrics" and isinstance(value, str):
        return float(value.replace("Infinity", "inf"))
    return value


def _sort_key(order: str) -> tuple[Callable[[dict[str, Any]], Any], bool]:
    words = order.split()
    descending = len(words) > 1 and words[-1].upper() == "DESC"
    target = words[0] if words else "attributes.start_time"
    entity, _, key = target.partition(".")
    entity = _ENTITIES.get(entity.lower(), "attributes")
    key = key.strip('`"') or target

    def value(view: dict[str, Any]) -> Any:
        found = _field(view, entity, key)
        return (found is None, found if found is not None else 0)

    return value, descending


def _search(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    from qflow.store.metadata.records import RunLifecycle

    view_type = str(body.get("run_view_type", "ACTIVE_ONLY")).upper()
    experiments = body.get("experiment_ids") or []
    experiments = experiments if isinstance(experiments, list) else [experiments]
    clauses = _clauses(str(body.get("filter") or ""))
    views = []
    for experiment in experiments:
        for run in ctx.metadata.list_runs(
            workflow=_workflow(experiment), limit=1_000_000, include_deleted=True
        ):
            deleted = run.lifecycle == RunLifecycle.DELETED
            if (view_type == "ACTIVE_ONLY" and deleted) or (
                view_type == "DELETED_ONLY" and not deleted
            ):
                continue
            view = _run_json(ctx, run)
            if all(_compare(_field(view, e, k), op, v) for e, k, op, v in clauses):
                views.append(view)
    views.sort(key=lambda v: (-(v["info"]["start_time"] or 0), v["info"]["run_id"]))
    for order in reversed(body.get("order_by") or []):
        key, descending = _sort_key(str(order))
        views.sort(key=key, reverse=descending)
    offset = int(base64.b64decode(body["page_token"]).decode()) if body.get("page_token") else 0
    limit = int(body.get("max_results") or 1000)
    page = views[offset : offset + limit]
    reply: dict[str, Any] = {"runs": page}
    if offset + limit < len(views):
        reply["next_page_token"] = base64.b64encode(str(offset + limit).encode()).decode()
    return reply


# -- routes -----------------------------------------------------------------------------------

Handler = Callable[[Request, "Context", dict[str, Any]], "dict[str, Any] | Response"]
_ROUTES: dict[str, Handler] = {}


def _route(path: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _ROUTES[path] = handler
        return handler

    return register


@_route("experiments/create")
def create_experiment(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = str(_required(body, "name"))
    taken = name == DEFAULT_EXPERIMENT or name in ctx.metadata.workflows()
    if taken or not ctx.metadata.create_experiment(name, _tags(body.get("tags"))):
        raise MlflowApiError("RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.")
    return {"experiment_id": _experiment_id(name)}


@_route("experiments/get")
def get_experiment(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = _workflow(str(_required(body, "experiment_id")))
    return {"experiment": _experiment(ctx, name)}


@_route("experiments/get-by-name")
def get_experiment_by_name(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"experiment": _experiment(ctx, str(_required(body, "experiment_name")))}


@_route("experiments/search")
def search_experiments(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    recorded = _recorded(ctx)
    names = sorted(set(recorded) | set(ctx.metadata.workflows()))
    found = [_experiment(ctx, name, recorded) for name in names]
    clauses = _clauses(str(body.get("filter") or ""))
    found = [
        e
        for e in found
        if all(
            _compare(e.get(k) if ent == "attributes" else None, op, v) for ent, k, op, v in clauses
        )
    ]
    limit = int(body.get("max_results") or 1000)
    return {"experiments": found[:limit]}


@_route("runs/create")
def create_run(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = _workflow(str(body.get("experiment_id") or "0"))
    _experiment(ctx, name)
    tags = _tags(body.get("tags"))
    if body.get("run_name"):
        tags["mlflow.runName"] = str(body["run_name"])
    if body.get("user_id"):
        tags.setdefault("mlflow.user", str(body["user_id"]))
    run = ctx.metadata.create_run(
        workflow=name, config={}, command="mlflow", meta={"source": "mlflow-rest-api"}
    )
    if tags:
        ctx.metadata.set_tags(run.id, tags)
    return {"run": _run_json(ctx, _run(ctx, run.id))}


@_route("runs/get")
def get_run(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    run_id = str(body.get("run_id") or _required(body, "run_uuid"))
    return {"run": _run_json(ctx, _run(ctx, run_id))}


@_route("runs/update")
def update_run(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(ctx, str(body.get("run_id") or _required(body, "run_uuid")))
    if body.get("run_name"):
        ctx.metadata.set_tags(run.id, {"mlflow.runName": str(body["run_name"])})
    status = _STATUS_FROM_MLFLOW.get(str(body.get("status", "")))
    if status is not None and run.status == "running":
        ctx.metadata.finish_run(run.id, status)
    else:
        _touch(request, ctx, run)
    return {"run_info": _run_json(ctx, _run(ctx, run.id))["info"]}


@_route("runs/delete")
def delete_run(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(ctx, str(_required(body, "run_id")))
    if run.status == "running":
        ctx.metadata.finish_run(run.id, "killed", error="deleted through the MLflow API")
    ctx.metadata.set_run_lifecycle([run.id], "deleted")
    return {}


@_route("runs/restore")
def restore_run(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    ctx.metadata.set_run_lifecycle([_run(ctx, str(_required(body, "run_id"))).id], "active")
    return {}


@_route("runs/search")
def search_runs(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return _search(ctx, body)


@_route("runs/log-metric")
def log_metric(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    metric = {k: body.get(k) for k in ("key", "value", "timestamp", "step")}
    _required(body, "key")
    run_id = str(body.get("run_id") or _required(body, "run_uuid"))
    _log(request, ctx, run_id, {"metrics": [metric]})
    return {}


@_route("runs/log-parameter")
def log_param(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    param = {"key": _required(body, "key"), "value": body.get("value", "")}
    run_id = str(body.get("run_id") or _required(body, "run_uuid"))
    _log(request, ctx, run_id, {"params": [param]})
    return {}


@_route("runs/set-tag")
def set_tag(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    tag = {"key": _required(body, "key"), "value": body.get("value", "")}
    run_id = str(body.get("run_id") or _required(body, "run_uuid"))
    _log(request, ctx, run_id, {"tags": [tag]})
    return {}


@_route("runs/log-batch")
def log_batch(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    _log(request, ctx, str(_required(body, "run_id")), body)
    return {}


@_route("metrics/get-history")
def metric_history(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(ctx, str(body.get("run_id") or _required(body, "run_uuid")))
    key = str(_required(body, "metric_key"))
    found = [m for m in ctx.metadata.metrics(run.id, key) if m.step_run_id is None]
    return {"metrics": [_metric_json(m) for m in found]}


@_route("logged-models/search")
def search_logged_models(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    """QFlow keeps no MLflow logged models: none match (the client asks when it lists or
    downloads a run's artifacts)."""
    return {"models": []}


@_route("registered-models/create")
def create_registered_model(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    raise MlflowApiError(
        "ENDPOINT_NOT_FOUND",
        "registered-models/create: QFlow registers models from run outputs. "
        "Hint: qflow models register RUN STEP --name NAME.",
    )


def _registered(ctx: Context, name: str) -> dict[str, Any]:
    model = next((m for m in ctx.registry.models() if m.name == name), None)
    if model is None:
        raise MlflowApiError(
            "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found"
        )
    latest = ctx.registry.versions(name)[-1:] if model.latest_version else []
    return {
        "name": model.name,
        "creation_timestamp": _ms(model.created_at),
        "last_updated_timestamp": _ms(model.created_at),
        "description": model.description or "",
        "latest_versions": [_version_json(v) for v in latest],
        "tags": [{"key": k, "value": v} for k, v in model.tags.items()],
        "aliases": [{"alias": a, "version": str(v)} for a, v in model.aliases.items()],
    }


def _version_json(v: Any) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": str(v.version),
        "creation_timestamp": _ms(v.created_at),
        "last_updated_timestamp": _ms(v.created_at),
        "description": v.description or "",
        "user_id": v.created_by or "",
        "current_stage": "None",
        "source": f"qflow:/{v.run_id}/{v.step}.{v.output}",
        "run_id": v.run_id,
        "status": "READY",
        "tags": [{"key": k, "value": val} for k, val in v.tags.items()],
        "aliases": list(v.aliases),
    }


@_route("registered-models/get")
def get_registered_model(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"registered_model": _registered(ctx, str(_required(body, "name")))}


@_route("registered-models/search")
def search_registered_models(
    request: Request, ctx: Context, body: dict[str, Any]
) -> dict[str, Any]:
    models = [_registered(ctx, m.name) for m in ctx.registry.models()]
    text = str(body.get("filter") or "")
    match = re.fullmatch(r"\s*name\s*(=|LIKE|ILIKE)\s*'([^']*)'\s*", text, re.IGNORECASE)
    if match:
        op, value = match[1].upper(), match[2]
        models = [m for m in models if _compare(m["name"], op, value)]
    return {"registered_models": models[: int(body.get("max_results") or 1000)]}


@_route("model-versions/get")
def get_model_version(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name, version = str(_required(body, "name")), str(_required(body, "version"))
    return {"model_version": _version_json(ctx.registry.get(f"{name}/{int(version)}"))}


@_route("model-versions/search")
def search_model_versions(request: Request, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    match = re.fullmatch(r"\s*name\s*=\s*'([^']*)'\s*", str(body.get("filter") or ""))
    names = [match[1]] if match else [m.name for m in ctx.registry.models()]
    versions = [_version_json(v) for n in names for v in ctx.registry.versions(n)]
    return {"model_versions": versions[: int(body.get("max_results") or 1000)]}


@router.api_route(API + "/{endpoint:path}", methods=["GET", "POST", "PATCH", "DELETE"])
async def mlflow_endpoint(endpoint: str, request: Request) -> Response:
    """Every MLflow tracking endpoint: the supported ones, or 501 naming the endpoint."""
    handler = _ROUTES.get(endpoint.strip("/"))
    if handler is None:
        return _error(
            MlflowApiError(
                "ENDPOINT_NOT_FOUND",
                f"{request.method} {API}/{endpoint} is not supported by the QFlow server's "
                "MLflow API (see qflow.web.routes.mlflow_api for the supported subset).",
            )
        )
    try:
        body = await _body(request)
    except MlflowApiError as exc:
        return _error(exc)
    ctx = context(request)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_handled, lambda: handler(request, ctx, body))


# -- proxied artifacts ------------------------------------------------------------------------


def _artifact_target(path: str) -> tuple[str, str]:
    """``<run id>/artifacts/<name>`` → (run id, name)."""
    run_id, _, rest = path.strip("/").partition("/")
    prefix, _, name = rest.partition("/")
    if not run_id or prefix != "artifacts" or ".." in name.split("/"):
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Artifact path {path!r} is not <run id>/artifacts/<path> of a QFlow run.",
        )
    return run_id, name


def _list_artifacts(ctx: Context, path: str) -> dict[str, Any]:
    run_id, folder = _artifact_target(path if "/artifacts" in path else f"{path}/artifacts")
    run = _run(ctx, run_id)
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    entries: dict[str, dict[str, Any]] = {}
    for artifact in ctx.metadata.run_artifacts(run.id):
        if artifact.step_run_id is not None or not artifact.name.startswith(prefix):
            continue
        head, slash, _ = artifact.name[len(prefix) :].partition("/")
        if slash:
            entries[head] = {"path": head, "is_dir": True}
        else:
            entries[head] = {"path": head, "is_dir": False, "file_size": artifact.ref.size}
    if not entries and folder:  # a file: MLflow lists it as itself
        exact = [a for a in ctx.metadata.run_artifacts(run.id) if a.name == folder.strip("/")]
        entries = {
            a.name: {"path": a.name.rpartition("/")[2], "is_dir": False, "file_size": a.ref.size}
            for a in exact
        }
    return {"files": [entries[k] for k in sorted(entries)]}


def _download(ctx: Context, path: str) -> Response:
    run_id, name = _artifact_target(path)
    run = _run(ctx, run_id)
    found = [a for a in ctx.metadata.run_artifacts(run.id) if a.name == name]
    if not found:
        raise MlflowApiError("RESOURCE_DOES_NOT_EXIST", f"No artifact {name!r} in run {run_id}.")
    data = ctx.registry.read_bytes(found[-1].ref)
    return Response(data, media_type="application/octet-stream")


def _upload(request: Request, ctx: Context, path: str, data: bytes) -> dict[str, Any]:
    run_id, name = _artifact_target(path)
    run = _run(ctx, run_id)
    ref = ctx.artifacts.put_bytes(data)
    ctx.metadata.log_run_artifact(run.id, name, ref)
    _touch(request, ctx, run)
    return {}


@router.get(ARTIFACTS)
async def list_artifacts(request: Request) -> Response:
    ctx, path = context(request), request.query_params.get("path", "")
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_handled, lambda: _list_artifacts(ctx, path))


@router.api_route(ARTIFACTS + "/{path:path}", methods=["GET", "PUT", "DELETE", "POST"])
async def artifact(path: str, request: Request) -> Response:
    """Download (GET) or upload (PUT) one artifact; other methods answer 501."""
    from starlette.concurrency import run_in_threadpool

    ctx = context(request)
    if request.method == "GET":
        return await run_in_threadpool(_handled, lambda: _download(ctx, path))
    if request.method == "PUT":
        data = await request.body()
        return await run_in_threadpool(_handled, lambda: _upload(request, ctx, path, data))
    return _error(
        MlflowApiError(
            "ENDPOINT_NOT_FOUND",
            f"{request.method} {ARTIFACTS}/{path} is not supported by the QFlow server's "
            "MLflow API.",
        )
    )
