"""``qf.log_*`` inside a notebook run by ``notebook_step`` reach the step that runs it.

The notebook runs in an ipykernel process, where no step is running. ``notebook_step`` puts a
first cell into the notebook that calls ``forward_from_kernel(PATH)``: from then on the
kernel's ``qf.log_*`` functions check their arguments as usual (a bad name fails the cell)
and append one JSON line per call to the file ``PATH``. The step tails that file while the
notebook runs: metrics reach the step's recorder as they are logged (with their own times);
params, tags and artifacts are recorded when the notebook ends, also when it fails.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qflow.runtime.context import StepRecorder

CELL_TAG = "qflow-forward"
POLL = 0.2


def shim_cell(records: Path) -> dict[str, Any]:
    """The first cell of the executed notebook: turns forwarding on in the kernel."""
    source = (
        "# Added by qflow notebook_step: qf.log_* calls go to the step running this notebook.\n"
        "from qflow.provenance.notebook_records import forward_from_kernel\n"
        f"forward_from_kernel({str(records)!r})\n"
        "del forward_from_kernel\n"
    )
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": CELL_TAG,
        "metadata": {"tags": [CELL_TAG]},
        "outputs": [],
        "source": source,
    }


class _KernelRecorder:
    """Stands in for a step's recorder inside the kernel: every call becomes a JSON line."""

    run_id = ""
    step_run_id = 0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sinks = self
        self._lock = threading.Lock()

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, allow_nan=True) + "\n"  # NaN, ±inf, -0.0 survive
        with self._lock, self.path.open("a", encoding="utf-8") as file:
            file.write(line)

    def add_metric(self, key: str, value: float, step: int | None, timestamp: float) -> None:
        self._write({"kind": "metric", "key": key, "value": value, "step": step, "at": timestamp})

    def params(self, run_id: str, step_run_id: int, params: dict[str, Any]) -> None:
        self._write({"kind": "params", "params": params})

    def tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._write({"kind": "tags", "tags": tags})

    def artifact(self, run_id: str, step_run_id: int, label: str, source: Path | bytes) -> None:
        if isinstance(source, bytes):  # a figure: its bytes go next to the records
            saved = self.path.parent / f"figure-{uuid.uuid4().hex}"
            saved.write_bytes(source)
            source = saved
        self._write({"kind": "artifact", "name": label, "path": str(Path(source).absolute())})


class _Fixed:
    """A ContextVar look-alike whose value is the same in every cell (IPython may run each
    cell in its own context, so a ``ContextVar.set`` in one cell would not reach the next)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def get(self) -> object:
        return self.value


def forward_from_kernel(records: str) -> None:
    """In the kernel: make ``qf.log_*`` write to ``records`` (called by the shim cell)."""
    from qflow.tracking import api

    api.__dict__["current_recorder"] = _Fixed(_KernelRecorder(Path(records)))


class Forwarder:
    """In the step: tails the records file and hands each call to the step's recorder."""

    def __init__(self, records: Path, recorder: StepRecorder | None) -> None:
        self.records = records
        self.recorder = recorder
        self.later: list[dict[str, Any]] = []
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tail, name="qflow-notebook", daemon=True)

    def __enter__(self) -> Forwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()
        self._replay()

    def _tail(self) -> None:
        while not self._stop.wait(POLL):
            self._poll()

    def _poll(self) -> None:
        data = b""
        with contextlib.suppress(FileNotFoundError), self.records.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        if not data or b"\n" not in data:
            return
        complete = data[: data.rindex(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("utf-8").splitlines():
            record = json.loads(line)
            if record["kind"] == "metric":
                if self.recorder is not None:
                    self.recorder.add_metric(
                        record["key"], float(record["value"]), record["step"], record["at"]
                    )
            else:
                self.later.append(record)

    def _replay(self) -> None:
        """Params, tags and artifacts, through the ``qf`` functions, on the step's thread."""
        from qflow.tracking import api

        for record in self.later:
            if record["kind"] == "params":
                api.log_params(record["params"])
            elif record["kind"] == "tags":
                for key, value in record["tags"].items():
                    api.set_tag(key, value)
            elif record["kind"] == "artifact" and Path(record["path"]).exists():
                api.log_artifact(record["path"], name=record["name"])
        self.later.clear()
