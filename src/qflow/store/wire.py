"""Records to JSON and back, for the remote store: exact floats travel as their bits, bytes
as base64; artifact keys must be sha256 hex, so a client can name only blobs in the store, and
inline bytes must hash to their key and have their stated size (``ref_from`` refuses others with
``ArtifactIntegrityError``), so a client cannot plant other bytes under a genuine key."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import struct
from typing import Any

from qflow.errors import InvalidValueError
from qflow.store.artifacts import ArtifactRef, check_inline
from qflow.store.metadata.records import DataFileRecord, LoggedArtifact, Metric, Run, StepRun

_KEY = re.compile(r"^[0-9a-f]{64}$")


def float_bits(value: float) -> int:
    bits: int = struct.unpack("<q", struct.pack("<d", value))[0]
    return bits


def bits_float(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<q", bits))[0]
    return value


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
