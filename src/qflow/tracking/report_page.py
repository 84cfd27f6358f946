"""A stored report (``qflow.tracking.report.Report``) as one HTML page that needs no network.

Everything from the report is escaped here: Markdown is rendered with raw HTML turned off (it
shows as text), table cells and titles go through ``html.escape``, images are ``data:`` URIs
of a fixed set of image types, and Plotly figures are JSON inside non-executing
``<script type="application/json">`` elements. The page's Content-Security-Policy runs only
the scripts QFlow wrote (by their sha256) and loads images only from ``data:``, so even markup
that got through could neither run nor fetch anything.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import MissingExtraError

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from qflow.tracking.report import Block, Report

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;color:#1f2328;margin:0 auto;max-width:1100px;
padding:16px 24px}
header{color:#656d76;font-size:13px;border-bottom:1px solid #d0d7de;margin-bottom:12px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.table{overflow-x:auto}.note{color:#656d76;font-size:13px}
img{max-width:100%}figure{margin:12px 0}.plotly{min-height:420px}
pre{background:#f6f8fa;padding:8px;overflow-x:auto}code{font-size:90%}
"""
# Draws each figure from its JSON; says so instead when plotly.js is not there.
_BOOT = """
for (const data of document.querySelectorAll("script.qflow-plotly")) {
  const box = document.createElement("div");
  box.className = "plotly";
  data.after(box);
  if (typeof Plotly === "undefined") {
    box.textContent = "(A Plotly figure: plotly.js is not available.)";
    continue;
  }
  const figure = JSON.parse(data.textContent);
  Plotly.newPlot(box, figure.data || [], figure.layout || {}, {
    displaylogo: false, showSendToCloud: false, showEditInChartStudio: false, responsive: true,
  });
}
"""


@functools.cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


@functools.cache
def plotly_js() -> str:
    """The installed plotly package's ``plotly.min.js``, to embed in an offline page."""
    try:
        import plotly
    except ImportError as exc:
        raise MissingExtraError.for_extra("plotly", "server") from exc
    source = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text("utf-8")
    # "</script" may only sit in a string or regex literal, where "<\/" means "</": escaped,
    # the copy cannot end its <script> element early.
    return _SCRIPT_END.sub(r"<\\/\1", source)


def _hash(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def policy(report: Report, plotly_src: str | None = None) -> str:
    """The Content-Security-Policy of ``render(report, plotly_src=plotly_src)``."""
    scripts = ["'none'"]
    if _has_plotly(report):
        scripts = [_hash(_BOOT), "'unsafe-eval'"]  # plotly.js compiles some code at run time
        scripts.append(plotly_src if plotly_src is not None else _hash(plotly_js()))
    return (
        f"default-src 'none'; script-src {' '.join(scripts)}; style-src 'unsafe-inline'; "
        "img-src data:; font-src data:; base-uri 'none'; form-action 'none'"
    )


def render(report: Report, *, plotly_src: str | None = None) -> str:
    """The report as an HTML page.

    Plotly figures use plotly.js from ``plotly_src`` (a URL the viewer can reach) or, when it
    is None, a copy of the installed package's embedded in the page, which then opens offline.
    """
    parts = [_block(b) for b in report.blocks]
    csp = html.escape(policy(report, plotly_src))
    head = (
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style>"
    )
    if _has_plotly(report):  # after the content, so the page shows before plotly.js runs
        if plotly_src is None:
            parts.append(f"<script>{plotly_js()}</script>")
        else:
            parts.append(f'<script src="{html.escape(plotly_src)}"></script>')
        parts.append(f"<script>{_BOOT}</script>")
    body = "\n".join(parts)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">{head}</head>\n'
        f"<body><header>{html.escape(report.title)} · QFlow report</header>\n{body}\n"
        "</body></html>\n"
    )


def _has_plotly(report: Report) -> bool:
    return any(b.get("kind") == "plotly" for b in report.blocks)


def _block(block: Block) -> str:
    kind = block.get("kind")
    if kind == "markdown":
        return (
            f'<section class="markdown">{_markdown().render(str(block.get("text", "")))}</section>'
        )
    if kind == "table":
        return _table(block)
    if kind == "image":
        mime, data = block.get("mime"), str(block.get("data", ""))
        if mime in IMAGE_TYPES and _BASE64.fullmatch(data):
            return f'<figure><img alt="figure" src="data:{mime};base64,{data}"></figure>'
        return '<p class="note">(An image QFlow cannot show: not a PNG, JPEG, GIF or WebP.)</p>'
    if kind == "plotly":
        # Inside <script type="application/json"> only "</script" could end the element:
        # "<", ">" and "&" are written as JSON escapes, so no sequence of text can.
        figure = json.dumps(block.get("figure", {}), allow_nan=False)
        for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            figure = figure.replace(char, escape)
        return f'<script type="application/json" class="qflow-plotly">{figure}</script>'
    return f'<p class="note">(A {html.escape(str(kind)[:40])!s} block this QFlow cannot show.)</p>'


def _table(block: Block) -> str:
    columns: list[Any] = list(block.get("columns") or [])
    rows: list[Any] = list(block.get("rows") or [])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows if isinstance(row, list)
    )
    total = block.get("total_rows")
    note = (
        f'<p class="note">{len(rows):,} of {total:,} rows</p>'
        if isinstance(total, int) and total > len(rows)
        else ""
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table">{table}{note}</div>'


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{'' if value is None else str(value).lower()}</td>"
    if isinstance(value, int | float):
        text = str(value) if isinstance(value, int) else format(value, ".10g")
        return f'<td class="num">{text}</td>'
    return f"<td>{html.escape(str(value))}</td>"
