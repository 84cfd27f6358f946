"""Render a :class:`~qflow.ci.report.ReportData` as GitHub-flavoured Markdown or HTML.

Every value that came from a run (metric names, config values, diffs) is escaped: table cells
lose ``|`` and line breaks, HTML is escaped, code goes into fences it cannot close, chart
titles keep only plain characters, and links are only http(s) URLs of plain characters.

Markdown charts are Mermaid ``xychart-beta`` blocks, which GitHub draws in comments and
files: at most ``MAX_CHARTS`` metrics of at most ``MAX_CHART_POINTS`` evenly spaced points
each (the last point always kept), so a comment stays far below GitHub's 65,536 characters.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from qflow.store.metadata.records import RunStatus

if TYPE_CHECKING:
    from qflow.ci.report import ReportData, Series

_ICON = {
    RunStatus.SUCCEEDED: "✅",
    RunStatus.FAILED: "❌",
    RunStatus.CRASHED: "💥",
    RunStatus.KILLED: "⛔",
    RunStatus.RUNNING: "⏳",
}
_MAX_DIFF_LINES = 200
MAX_CHARTS = 12
MAX_CHART_POINTS = 60
MAX_COMMENT = 60_000
"""Characters of Markdown at most: GitHub refuses comments over 65,536."""


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1%}"


def _delta(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4g}"


def md_cell(value: Any) -> str:
    text = number(value) if not isinstance(value, str) else value
    text = html.escape(text, quote=False).replace("|", "\\|")
    return " ".join(text.split()) or " "


def _when(moment: float | None) -> str:
    return "–" if moment is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))


def summary_rows(data: ReportData) -> list[tuple[str, str]]:
    run = data.run
    git = run.meta.get("git") if isinstance(run.meta.get("git"), dict) else {}
    commit = str((git or {}).get("commit") or "")[:10]
    rows = [
        ("run", run.id),
        ("workflow", run.workflow),
        ("status", f"{_ICON.get(run.status, '')} {run.status}".strip()),
        ("started", _when(run.created_at)),
        ("duration", "–" if run.duration is None else f"{run.duration:.1f} s"),
    ]
    if commit:
        branch = (git or {}).get("branch")
        dirty = " + uncommitted changes" if (git or {}).get("dirty") else ""
        rows.append(("git", f"{commit}{f' ({branch})' if branch else ''}{dirty}"))
    if run.error:
        rows.append(("error", run.error[:300]))
    return rows


def tracker_rows(data: ReportData) -> list[list[str]]:
    """tracker | experiment | run | more, one row per tracker (QFlow's own store first)."""
    rows = []
    for ids in data.trackers:
        name = str(ids.get("tracker"))
        experiment = ids.get("experiment_id") or ids.get("project") or ids.get("experiment")
        if ids.get("experiment_id") and ids.get("experiment"):
            experiment = f"{ids['experiment_id']} ({ids['experiment']})"
        run = ids.get("run_id") or (f"group {ids['group']}" if ids.get("group") else None)
        shown = {"tracker", "experiment_id", "experiment", "project", "run_id"}
        if not ids.get("run_id"):
            shown.add("group")
        more = "; ".join(f"{k} {v}" for k, v in ids.items() if k not in shown)
        label = f"QFlow ({name})" if name == "filetracker" else name
        rows.append([label, experiment or "–", run or "–", more or "–"])
    return rows


def _sample(points: Series) -> Series:
    if len(points) <= MAX_CHART_POINTS:
        return points
    step = (len(points) - 1) / (MAX_CHART_POINTS - 1)
    return [points[round(i * step)] for i in range(MAX_CHART_POINTS)]


def mermaid_number(value: float) -> str:
    """A number as Mermaid's xychart reads it: no exponent (``1e-05`` is a parse error)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be charted")
    if abs(value) < 1e-12:
        return "0"
    text = f"{value:.6g}"
    if "e" in text:
        text = format(Decimal(text), "f")
    return text


def mermaid_chart(key: str, points: Series) -> str:
    """A Mermaid ``xychart-beta`` line chart of one metric's history (x: the step)."""
    title = re.sub(r"[^A-Za-z0-9 _./:+-]", "_", key)[:80] or "metric"
    sampled = _sample(points)
    steps = ", ".join(mermaid_number(x) for x, _ in sampled)
    values = ", ".join(mermaid_number(y) for _, y in sampled)
    return "\n".join(
        [
            "xychart-beta",
            f'  title "{title}"',
            f'  x-axis "step" [{steps}]',
            f'  y-axis "{title}"',
            f"  line [{values}]",
        ]
    )


def _md_link(label: str, url: str) -> str:
    return f"[{md_cell(label)}]({url})"


def _metric_header(compare: bool) -> list[str]:
    header = ["metric", "value", "min", "max", "points", "trend"]
    return [*header, "baseline", "Δ", "Δ %"] if compare else header


def _metric_cells(row: dict[str, Any], compare: bool) -> list[str]:
    cells = [
        row["key"],
        number(row["last"]),
        number(row["min"]),
        number(row["max"]),
        str(row["points"]),
        row["spark"],
    ]
    if compare:
        cells += [number(row.get("base")), _delta(row.get("delta")), _percent(row.get("relative"))]
    return cells


def _changes(diff: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(section, key, baseline, this run) rows for config, params, data and outputs."""
    rows = []
    for section in ("config", "params", "data", "outputs", "steps"):
        for key, (a, b) in diff.get(section, {}).items():
            short = 12 if section in ("outputs", "data") else 200
            rows.append((section, key, number(a)[:short], number(b)[:short]))
    env = dict(diff.get("environment", {}))
    packages = env.pop("packages", None) or {}
    for key, (a, b) in env.items():
        if key != "git.diff":
            rows.append(("environment", key, number(a)[:40], number(b)[:40]))
    for name, version in packages.get("added", {}).items():
        rows.append(("packages", name, "–", str(version)))
    for name, version in packages.get("removed", {}).items():
        rows.append(("packages", name, str(version), "–"))
    for name, (old, new) in packages.get("changed", {}).items():
        rows.append(("packages", name, str(old), str(new)))
    return rows


def _code_text(change: dict[str, Any]) -> str:
    if "only_in" in change:
        return f"only in the {'baseline' if change['only_in'] == 'a' else 'this run'}"
    lines = str(change.get("diff") or "").splitlines()
    if not lines:
        return "fingerprint changed"
    cut = lines[:_MAX_DIFF_LINES]
    if len(lines) > _MAX_DIFF_LINES:
        cut.append(f"... {len(lines) - _MAX_DIFF_LINES} more lines")
    return "\n".join(cut)


def _table(header: list[str], rows: list[list[str]], cell: Callable[[Any], str]) -> list[str]:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(data: ReportData) -> str:
    """Markdown for a PR comment: nothing in it needs a file next to it or another host.

    A comment holds at most 65,536 characters: past ``MAX_COMMENT`` the code diffs are left
    out (the HTML report and ``qflow diff`` have them), then the what-changed rows are cut."""
    text = _markdown(data, code=True)
    if len(text) > MAX_COMMENT:
        text = _markdown(data, code=False)
    if len(text) > MAX_COMMENT:
        cut = text[: MAX_COMMENT - 200].rsplit("\n", 1)[0]
        text = f"{cut}\n\n_The report was cut here: it is longer than a PR comment can be._\n"
    return text


def _markdown(data: ReportData, *, code: bool) -> str:
    run = data.run
    compare = data.baseline is not None
    out = [f"## QFlow run `{run.id}`: {md_cell(run.workflow)} {run.status}", ""]
    out += _table(["", ""], [[k, v] for k, v in summary_rows(data)], md_cell)
    if data.links:
        out += ["", " · ".join(_md_link(label, url) for label, url in data.links)]
    out += ["", "### Trackers", ""]
    out += _table(["tracker", "experiment", "run", "more"], tracker_rows(data), md_cell)
    if data.runtime:
        out += ["", "### Runtime", ""]
        out += _table(["", ""], [[k, v] for k, v in data.runtime], md_cell)
    out += ["", "### Metrics", ""]
    if data.metrics:
        rows = [_metric_cells(r, compare) for r in data.metrics]
        out += _table(_metric_header(compare), rows, md_cell)
    else:
        out.append("No metrics were logged.")
    if data.series:
        out += ["", "### Metric history", ""]
        for index, (key, points) in enumerate(list(data.series.items())[:MAX_CHARTS]):
            out += [*([""] if index else []), "```mermaid", mermaid_chart(key, points), "```"]
        left = len(data.series) - MAX_CHARTS
        if left > 0:
            out += ["", f"_{left} more metric histories are in the report's plots/ folder._"]
    out += ["", "### Comparison", ""]
    if data.baseline is None:
        out.append(data.baseline_note or "No baseline run was asked for (`--compare-to`).")
        return "\n".join(out) + "\n"
    out.append(f"Against run `{data.baseline.id}` ({md_cell(data.baseline_note)}).")
    diff = data.diff or {}
    changes = _changes(diff)
    if changes:
        out += ["", "**What changed**", ""]
        out += _table(["", "key", "baseline", "this run"], [list(c) for c in changes], md_cell)
    changed_code = diff.get("code", {})
    if changed_code:
        count = len(changed_code)
        out += ["", f"**Code** ({count} step{'s' if count != 1 else ''} changed)", ""]
    if changed_code and not code:
        out.append(
            "_The code diffs are left out: with them this comment would be longer than "
            "GitHub allows. `qflow diff` or the HTML report shows them._"
        )
    elif changed_code:
        for name, change in changed_code.items():
            text = _code_text(change)
            fence = "~~~~~" if "```" in text or "~~~" in text else "```"
            out += [
                "<details>",
                f"<summary>{md_cell(name)}</summary>",
                "",
                f"{fence}diff",
                text.replace(fence, ""),
                fence,
                "</details>",
            ]
    if not changes and not changed_code:
        out += ["", "Config, code, data and environment are the same as the baseline's."]
    return "\n".join(out) + "\n"


def _h(value: Any) -> str:
    return html.escape(number(value) if not isinstance(value, str) else value)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;"
    "text-align:left}pre{background:#f6f8fa;padding:.6em;overflow:auto}img{margin:.3em}"
)


def render_html(data: ReportData, images: dict[str, str]) -> str:
    """A standalone HTML page; ``images`` maps metric keys to base64 PNG data."""
    run = data.run
    compare = data.baseline is not None
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>QFlow run {_h(run.id)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>QFlow run <code>{_h(run.id)}</code>: {_h(run.workflow)} {_h(run.status)}</h1>",
        _html_table(["", ""], [[k, v] for k, v in summary_rows(data)]),
    ]
    if data.links:
        parts.append(
            "<p>"
            + " · ".join(f"<a href='{url}'>{_h(label)}</a>" for label, url in data.links)
            + "</p>"
        )
    parts += [
        "<h2>Trackers</h2>",
        _html_table(["tracker", "experiment", "run", "more"], tracker_rows(data)),
    ]
    if data.runtime:
        parts += ["<h2>Runtime</h2>", _html_table(["", ""], [[k, v] for k, v in data.runtime])]
    parts.append("<h2>Metrics</h2>")
    if data.metrics:
        rows = [_metric_cells(r, compare) for r in data.metrics]
        parts.append(_html_table(_metric_header(compare), rows))
    else:
        parts.append("<p>No metrics were logged.</p>")
    if images:
        parts.append("<h2>Metric history</h2>")
        parts += [
            f"<img alt='{_h(key)}' src='data:image/png;base64,{data64}'>"
            for key, data64 in images.items()
        ]
    parts.append("<h2>Comparison</h2>")
    if data.baseline is None:
        parts.append(f"<p>{_h(data.baseline_note or 'No baseline run was asked for.')}</p>")
    else:
        parts.append(
            f"<p>Against run <code>{_h(data.baseline.id)}</code> ({_h(data.baseline_note)}).</p>"
        )
        diff = data.diff or {}
        changes = _changes(diff)
        if changes:
            parts.append(
                _html_table(["", "key", "baseline", "this run"], [list(c) for c in changes])
            )
        for name, change in diff.get("code", {}).items():
            parts.append(f"<h3>Code: {_h(name)}</h3><pre>{_h(_code_text(change))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
