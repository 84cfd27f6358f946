"""``qf.report``: a page of markdown, tables and figures kept with a step run (as Metaflow's
cards), shown on the step's page in the dashboard and exported as one offline HTML file.

A report is stored as data, never as markup: a JSON document (``Report.to_json``) logged as an
artifact of the step run under ``reports/<step>.json``. It is turned into HTML only when it is
shown (``qflow.tracking.report_page.render``), so escaping happens in one place, at display.
"""

from __future__ import annotations

import base64
import io
import json
import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qflow.errors import ArtifactNotFoundError, InvalidValueError
from qflow.runtime.context import current_recorder

if TYPE_CHECKING:
    from qflow.runtime.context import StepRecorder
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.contract import MetadataStore

FORMAT = "qflow.report/1"
MAX_TABLE_ROWS = 1000
"""Rows kept per table; the report says how many there were."""
Block = dict[str, Any]

_open_reports: weakref.WeakKeyDictionary[StepRecorder, Report] = weakref.WeakKeyDictionary()


def report_label(step_name: str) -> str:
    """The logged artifact name of a step run's report."""
    return f"reports/{step_name}.json"


@dataclass
class Report:
    """A report page: a title and blocks (markdown, table, image, plotly), in order."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *items: Any) -> Report:
        """Append one block per item (see ``report`` for what each kind of item becomes); an
        item it cannot show raises before any of them is added."""
        self.blocks += [block(item) for item in items]
        return self

    def to_json(self) -> bytes:
        return json.dumps(
            {"format": FORMAT, "title": self.title, "blocks": self.blocks},
            allow_nan=False,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Report:
        """Read a stored report; anything that is not one is an ``InvalidValueError``."""
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise InvalidValueError(f"This artifact is not a QFlow report ({exc}).") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise InvalidValueError(
                f"This artifact is not a QFlow report (no {FORMAT!r} format field)."
            )
        blocks = document.get("blocks")
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            raise InvalidValueError("This QFlow report's 'blocks' is not a list of objects.")
        return cls(str(document.get("title") or "Report"), blocks)

    def to_html(self, plotly_src: str | None = None) -> str:
        """The report as one HTML page (see ``report_page.render``)."""
        from qflow.tracking.report_page import render

        return render(self, plotly_src=plotly_src)


def report(*items: Any, title: str | None = None) -> Report:
    """Add markdown, tables and figures to the running step's report page.

    Each item becomes one block, in order:

    - ``str``: Markdown (CommonMark and tables). Raw HTML in it is shown as text, never run.
    - a pandas ``DataFrame`` or ``Series`` (or a polars or Arrow table), a list of dicts (one
      row each) or a dict (one row per key): a table of at most 1,000 rows.
    - a matplotlib figure (a PNG image), a Plotly figure (interactive; drawn offline from the
      plotly package), or any object with ``_repr_png_`` (a PIL image).

    Calls add to one page per step run, which is stored with the step run at each call (so a
    long step shows its report so far) and shown on the step's page in the dashboard;
    ``qflow step-report RUN STEP PATH`` exports it as one standalone HTML file. Outside a
    running step the blocks are only built and checked, so steps stay testable as plain
    functions.

    ```python
    @qf.step
    def evaluate(model, X, y) -> float:
        scores = pd.DataFrame({"fold": [1, 2], "accuracy": [0.91, 0.93]})
        qf.report("# Evaluation\\nAccuracy per fold:", scores, confusion_figure, title="eval")
        return float(scores["accuracy"].mean())
    ```

    Args:
        *items: the blocks to append.
        title: the page's title (default: the step's name); a later call may change it.

    Returns:
        The report so far.
    """
    if title is not None and not isinstance(title, str):
        raise InvalidValueError(f"Report title {title!r} must be text.")
    recorder = current_recorder.get()
    if recorder is None:
        return Report(title or "Report").add(*items)
    page = _open_reports.setdefault(recorder, Report(recorder.step_name))
    page.add(*items)
    if title is not None:
        page.title = title
    recorder.sinks.artifact(
        recorder.run_id, recorder.step_run_id, report_label(recorder.step_name), page.to_json()
    )
    return page


def load_report(
    metadata: MetadataStore, artifacts: ArtifactStore, run_id: str, step: str
) -> Report:
    """The report of step ``step`` (a step run's name) of run ``run_id`` (an id or prefix),
    read from the stores (the blob checked against its hash)."""
    run = metadata.get_run(run_id)
    step_run = metadata.get_step_run(run.id, step)
    logged = metadata.run_artifacts(run.id)
    for entry in logged:
        if entry.name == report_label(step_run.name) and entry.step_run_id == step_run.id:
            ref = entry.ref
            inline = ref.inline
            data = inline if inline is not None else artifacts.read_bytes(ref.key, size=ref.size)
            return Report.from_json(data)
    names = {s.id: s.name for s in metadata.step_runs(run.id)}
    have = sorted(
        names[e.step_run_id]
        for e in logged
        if e.step_run_id in names and e.name == report_label(names[e.step_run_id])
    )
    raise ArtifactNotFoundError(
        f"Step {step_run.name!r} of run {run.id} has no report: it did not call qf.report. "
        + (f"Steps with a report: {', '.join(have)}." if have else "No step of this run has one.")
    )


def block(item: Any) -> Block:
    """One report block for ``item``; an ``InvalidValueError`` names a kind it cannot show."""
    if isinstance(item, str):
        return {"kind": "markdown", "text": item}
    module = type(item).__module__
    if module.startswith("plotly") and hasattr(item, "to_json"):
        return {"kind": "plotly", "figure": json.loads(item.to_json())}
    if hasattr(item, "savefig"):
        return _image(_png(item), "image/png")
    if callable(getattr(item, "_repr_png_", None)):
        return _image(item._repr_png_(), "image/png")
    if module.startswith("pandas") and hasattr(item, "to_frame"):
        return block(item.to_frame())
    if module.startswith("pandas") and hasattr(item, "columns"):
        return _frame_table(item)
    if callable(getattr(item, "to_pandas", None)):  # polars and Arrow tables
        return block(item.to_pandas())
    if isinstance(item, Mapping):
        return _table(["key", "value"], [[k, v] for k, v in item.items()], len(item))
    if isinstance(item, Sequence) and item and all(isinstance(r, Mapping) for r in item):
        columns = list(dict.fromkeys(str(k) for row in item for k in row))
        rows = [[row.get(c) for c in columns] for row in item[:MAX_TABLE_ROWS]]
        return _table(columns, rows, len(item))
    raise InvalidValueError(
        f"qf.report cannot show a {type(item).__module__}.{type(item).__qualname__}. "
        "It takes Markdown text, a DataFrame (pandas, polars, Arrow), a list of dicts, a dict, a "
        "matplotlib or Plotly figure, or an image with _repr_png_ (PIL).\n"
        "Hint: convert it, e.g. str(value) for text or pd.DataFrame(value) for a table."
    )


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _image(data: bytes, mime: str) -> Block:
    return {"kind": "image", "mime": mime, "data": base64.b64encode(data).decode()}


def _frame_table(frame: Any) -> Block:
    """A DataFrame's first rows; a meaningful index (named, or not 0..n-1) becomes columns."""
    total = len(frame)
    head = frame.head(MAX_TABLE_ROWS)
    if type(head.index).__name__ != "RangeIndex" or any(n is not None for n in head.index.names):
        head = head.reset_index()
    columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in head.columns]
    return _table(columns, head.itertuples(index=False, name=None), total)


def _table(columns: list[str], rows: Any, total: int) -> Block:
    return {
        "kind": "table",
        "columns": columns,
        "rows": [[_cell(v) for v in row] for row in rows],
        "total_rows": total,
    }


def _cell(value: Any) -> str | int | float | bool | None:
    """A JSON scalar for a table cell: numbers and booleans stay numbers, the rest is text."""
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        value = item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)
