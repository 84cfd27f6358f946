"""Records to JSON and back, for the remote store: exact floats travel as their bits, bytes
as base64; artifact keys must be sha256 hex, so a client can name only blobs in the store, and
inline bytes must hash to their key and have their stated size (``ref_from`` refuses others with
``ArtifactIntegrityError``), so a client cannot plant other bytes under a genuine key."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from qflow.errors import InvalidValueError
from qflow.store.artifacts import ArtifactRef, check_inline
from qflow.store.bits import bits_float, float_bits
from qflow.store.metadata.records import (
    AliasChange,
    DataFileRecord,
    Experiment,
    LoggedArtifact,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
    RunsPage,
    StepOutcome,
    StepRun,
    StepStart,
    StepStatus,
)

T = TypeVar("T")

_KEY = re.compile(r"^[0-9a-f]{64}$")


def ref_to(ref: ArtifactRef) -> dict[str, Any]:
    data = ref.to_dict()
    data["inline"] = None if ref.inline is None else base64.b64encode(ref.inline).decode()
    return data


def ref_from(data: dict[str, Any]) -> ArtifactRef:
    key = str(data["key"])
    if not _KEY.match(key):
        raise InvalidValueError(f"Artifact key {key[:80]!r} is not a sha256 (64 hex digits).")
    inline = data.get("inline")
    if inline is not None:
        try:
            inline = base64.b64decode(inline, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidValueError(
                f"The inline bytes of artifact {key[:12]!r} are not base64."
            ) from exc
    size = int(data["size"])
    if inline is not None:
        check_inline(key, size, inline)
    return ArtifactRef(
        key,
        str(data["serializer"]),
        size,
        str(data["type_name"]),
        bool(data["pickled"]),
        inline,
        serializer_version=str(data.get("serializer_version") or ""),
    )


def run_to(run: Run) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["metrics_summary"] = {k: float_bits(v) for k, v in run.metrics_summary.items()}
    return data


def run_from(data: dict[str, Any]) -> Run:
    fields = dict(data)
    fields["metrics_summary"] = {k: bits_float(v) for k, v in data["metrics_summary"].items()}
    return Run(**fields)


def step_to(step: StepRun) -> dict[str, Any]:
    data = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
    data["inputs"] = {k: ref_to(v) for k, v in step.inputs.items()}
    data["outputs"] = {k: ref_to(v) for k, v in step.outputs.items()}
    return data


def step_from(data: dict[str, Any]) -> StepRun:
    fields = dict(data)
    fields["inputs"] = {k: ref_from(v) for k, v in data["inputs"].items()}
    fields["outputs"] = {k: ref_from(v) for k, v in data["outputs"].items()}
    return StepRun(**fields)


def outcome_to(outcome: StepOutcome) -> dict[str, Any]:
    data = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)}
    data["inputs"] = {k: ref_to(v) for k, v in outcome.inputs.items()}
    data["outputs"] = {k: ref_to(v) for k, v in outcome.outputs.items()}
    return data


def outcome_from(data: dict[str, Any]) -> StepOutcome:
    fields = dict(data)
    fields["status"] = StepStatus(data["status"])
    fields["inputs"] = {k: ref_from(v) for k, v in data["inputs"].items()}
    fields["outputs"] = {k: ref_from(v) for k, v in data["outputs"].items()}
    return StepOutcome(**fields)


def data_file_to(record: DataFileRecord) -> dict[str, Any]:
    return dataclasses.asdict(record)


def data_file_from(data: dict[str, Any]) -> DataFileRecord:
    return DataFileRecord(**data)


def metric_to(metric: Metric) -> dict[str, Any]:
    return {**dataclasses.asdict(metric), "value": float_bits(metric.value)}


def metric_from(data: dict[str, Any]) -> Metric:
    return Metric(**{**data, "value": bits_float(data["value"])})


def logged_to(item: LoggedArtifact) -> dict[str, Any]:
    return {"name": item.name, "ref": ref_to(item.ref), "step_run_id": item.step_run_id}


def logged_from(data: dict[str, Any]) -> LoggedArtifact:
    return LoggedArtifact(data["name"], ref_from(data["ref"]), data["step_run_id"])


def model_version_from(data: dict[str, Any]) -> ModelVersion:
    return ModelVersion(**{**data, "aliases": tuple(data["aliases"])})


def record_to(record: Any) -> dict[str, Any]:
    """A frozen dataclass record as a JSON object (its fields are JSON values)."""
    result: dict[str, Any] = dataclasses.asdict(record)
    return result


def runs_page_to(page: RunsPage) -> dict[str, Any]:
    return dataclasses.asdict(page)


def runs_page_from(data: dict[str, Any]) -> RunsPage:
    return RunsPage(**data)


MetricRow = tuple[str, int | None, str, float, int | None, float]


def metric_row_to(row: MetricRow) -> dict[str, Any]:
    try:
        bits = float_bits(float(row[3]))
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(
            f"Metric {row[2]!r} has the value {row[3]!r}, which is not a number. "
            "Hint: log a float or int, for example float(x)."
        ) from exc
    return {
        "run_id": row[0],
        "step_run_id": row[1],
        "key": row[2],
        "bits": bits,
        "step": row[4],
        "timestamp": row[5],
    }


def metric_row_from(data: dict[str, Any]) -> MetricRow:
    return (
        data["run_id"],
        data["step_run_id"],
        data["key"],
        bits_float(data["bits"]),
        data["step"],
        data["timestamp"],
    )


def json_default(value: object) -> object:
    """numpy scalars and arrays become numbers and lists; anything else its ``str``."""
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    return str(value)


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON types (what the SQL store would store for it)."""
    return json.loads(json.dumps(value, default=json_default))


# -- codecs: how one argument or result of a store method travels -----------------------------


@dataclasses.dataclass(frozen=True)
class Codec(Generic[T]):
    """A value to JSON (``encode``, on the sending side) and back (``decode``)."""

    encode: Callable[[T], Any]
    decode: Callable[[Any], T]


def _same(value: Any) -> Any:
    return value


PLAIN: Codec[Any] = Codec(_same, _same)
"""JSON values as they are."""
JSON: Codec[Any] = Codec(plain_json, _same)
"""Any value the SQL store would JSON-encode (numpy numbers become numbers)."""
NOTHING: Codec[None] = Codec(lambda _: None, lambda _: None)
TEXT: Codec[str] = Codec(_same, str)
INT: Codec[int] = Codec(_same, int)
RUN: Codec[Run] = Codec(run_to, run_from)
STEP: Codec[StepRun] = Codec(step_to, step_from)
OUTCOME: Codec[StepOutcome] = Codec(outcome_to, outcome_from)
STEP_START: Codec[StepStart] = Codec(dataclasses.asdict, lambda d: StepStart(**d))
FINISHED: Codec[tuple[int, StepOutcome]] = Codec(
    lambda pair: [pair[0], outcome_to(pair[1])], lambda d: (int(d[0]), outcome_from(d[1]))
)
"""A step run's id and its outcome (``record_step_runs``)."""
METRIC: Codec[Metric] = Codec(metric_to, metric_from)
METRIC_ROW: Codec[MetricRow] = Codec(metric_row_to, metric_row_from)
LOGGED: Codec[LoggedArtifact] = Codec(logged_to, logged_from)
REF: Codec[ArtifactRef] = Codec(ref_to, ref_from)
DATA_FILE: Codec[DataFileRecord] = Codec(data_file_to, data_file_from)
RUNS_PAGE: Codec[RunsPage] = Codec(runs_page_to, runs_page_from)
MODEL_VERSION: Codec[ModelVersion] = Codec(record_to, model_version_from)
REGISTERED_MODEL: Codec[RegisteredModel] = Codec(record_to, lambda d: RegisteredModel(**d))
ALIAS_CHANGE: Codec[AliasChange] = Codec(record_to, lambda d: AliasChange(**d))
EXPERIMENT: Codec[Experiment] = Codec(record_to, lambda d: Experiment(**d))


def listed(item: Codec[T]) -> Codec[list[T]]:
    """A list (any sequence when encoding) of ``item``."""

    def encode(values: Sequence[T]) -> list[Any]:
        return [item.encode(v) for v in values]

    def decode(data: Any) -> list[T]:
        return [item.decode(v) for v in data]

    return Codec(encode, decode)


def optional(item: Codec[T]) -> Codec[T | None]:
    def encode(value: T | None) -> Any:
        return None if value is None else item.encode(value)

    def decode(data: Any) -> T | None:
        return None if data is None else item.decode(data)

    return Codec(encode, decode)


def keyed(item: Codec[T]) -> Codec[dict[str, T]]:
    """A dict with string keys and ``item`` values."""

    def encode(values: dict[str, T]) -> dict[str, Any]:
        return {str(k): item.encode(v) for k, v in values.items()}

    def decode(data: Any) -> dict[str, T]:
        return {str(k): item.decode(v) for k, v in data.items()}

    return Codec(encode, decode)


def entries() -> Codec[Any]:
    """Step-run entries of ``create_step_runs``: name, step, position, params, source."""

    def encode(values: Any) -> list[dict[str, Any]]:
        return [
            {k: e[k] for k in ("name", "step", "position")}
            | {"params": plain_json(e["params"]), "source": e.get("source")}
            for e in values
        ]

    return Codec(encode, _same)


TUPLES: Codec[Any] = Codec(
    lambda rows: [list(r) for r in rows], lambda rows: [tuple(r) for r in rows]
)
"""A list of fixed-width tuples of plain values (JSON arrays)."""
