"""``qf.report``'s builder and its HTML page: each kind of item, limits, errors, escaping, and
a Content-Security-Policy that runs only QFlow's own scripts."""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser

import pytest

import qflow as qf
from qflow.errors import InvalidValueError
from qflow.tracking.report import MAX_TABLE_ROWS, Report

pd = pytest.importorskip("pandas")


class _Page(HTMLParser):
    """The scripts, their types and every src/href of a page, as a browser parses them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.scripts: list[tuple[str | None, str]] = []
        self.links: list[str] = []
        self.csp = ""
        self._type: str | None = None
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "meta" and found.get("http-equiv") == "Content-Security-Policy":
            self.csp = found.get("content") or ""
        if tag == "script":
            self._in_script, self._type = True, found.get("type")
            self.scripts.append((self._type, ""))

    def handle_data(self, data: str) -> None:
        if self._in_script:
            kind, text = self.scripts[-1]
            self.scripts[-1] = (kind, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def test_each_kind_of_item_becomes_a_block():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    import pyarrow as pa
    from PIL import Image

    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    frame = pd.DataFrame(
        {"a": [1, 2], "b": [0.5, float("nan")]}, index=pd.Index(["x", "y"], name="k")
    )
    page = qf.report(
        "# Title",
        frame,
        pd.Series([3, 4], name="s"),
        [{"x": 1}, {"y": "two"}],
        {"lr": 0.1},
        figure,
        go.Figure(go.Bar(x=[1], y=[2])),
        Image.new("RGB", (2, 2)),
        pa.table({"n": [1, 2]}),
        title="T",
    )
    plt.close(figure)
    kinds = [b["kind"] for b in page.blocks]
    assert kinds == [
        "markdown",
        "table",
        "table",
        "table",
        "table",
        "image",
        "plotly",
        "image",
        "table",
    ]
    assert page.title == "T"
    table = page.blocks[1]
    assert table["columns"] == ["k", "a", "b"]  # a named index is kept as a column
    assert table["rows"] == [["x", 1, 0.5], ["y", 2, "nan"]]
    assert page.blocks[2]["columns"] == ["s"]
    assert page.blocks[3] == {
        "kind": "table",
        "columns": ["x", "y"],
        "rows": [[1, None], [None, "two"]],
        "total_rows": 2,
    }
    assert page.blocks[4]["rows"] == [["lr", 0.1]]
    assert base64.b64decode(page.blocks[5]["data"]).startswith(b"\x89PNG")
    assert page.blocks[6]["figure"]["data"][0]["type"] == "bar"
    assert page.blocks[8]["rows"] == [[1], [2]]
    assert Report.from_json(page.to_json()) == page


def test_a_long_table_keeps_the_first_rows_and_says_how_many_there_were():
    page = qf.report(pd.DataFrame({"i": range(MAX_TABLE_ROWS + 500)}))
    assert len(page.blocks[0]["rows"]) == MAX_TABLE_ROWS
    assert "1,000 of 1,500 rows" in page.to_html()


def test_an_item_it_cannot_show_is_named():
    page = Report("r")
    with pytest.raises(InvalidValueError, match=r"cannot show a builtins\.object.*Markdown text"):
        page.add("# fine", object())
    assert page.blocks == []  # nothing half-added
    with pytest.raises(InvalidValueError, match="title 3 must be text"):
        qf.report("x", title=3)  # type: ignore[arg-type]


def test_a_stored_document_that_is_not_a_report_is_refused():
    with pytest.raises(InvalidValueError, match="not a QFlow report"):
        Report.from_json(b'{"blocks": []}')
    with pytest.raises(InvalidValueError, match="not a QFlow report"):
        Report.from_json(b"\x89PNG")


def test_markup_in_markdown_cells_and_titles_is_text_and_only_data_images_load():
    page = Report(
        "<b>t</b>",
        [
            {"kind": "markdown", "text": "<script>alert(1)</script> [x](javascript:alert(1))"},
            {"kind": "markdown", "text": "![remote](https://example.com/t.png)"},
            {"kind": "table", "columns": ["<i>c</i>"], "rows": [["<img src=x onerror=alert(1)>"]]},
            {"kind": "image", "mime": "text/html", "data": "PHNjcmlwdD4="},
            {"kind": "image", "mime": "image/png", "data": '" onerror="alert(1)'},
            {"kind": "<svg>"},
        ],
    ).to_html()
    parsed = _Page(page)
    assert parsed.scripts == []  # no Plotly figure: no script at all
    assert "script-src 'none'" in parsed.csp and "img-src data:;" in parsed.csp
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "javascript:" not in " ".join(parsed.links)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<b>t</b>" not in page
    assert page.count("(An image QFlow cannot show") == 2
    assert "(A &lt;svg&gt; block this QFlow cannot show.)" in page


def test_only_qflows_own_scripts_may_run_and_the_offline_page_loads_nothing():
    import plotly.graph_objects as go

    figure = go.Figure(go.Scatter(x=[1], y=[2], name="</script><script>alert(1)</script>"))
    page = qf.report("# Figure", figure).to_html()
    parsed = _Page(page)
    code = [text for kind, text in parsed.scripts if kind is None]
    assert len(code) == 2  # the embedded plotly.js and the loop that draws each figure
    for text in code:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in parsed.csp
    (directive,) = [d for d in parsed.csp.split("; ") if d.startswith("script-src ")]
    assert len(directive.split()) == 4  # the two hashes and 'unsafe-eval' (plotly.js needs it)
    (data,) = [text for kind, text in parsed.scripts if kind == "application/json"]
    assert "alert(1)" in data and "<" not in data
    assert parsed.links == []  # nothing is fetched: no src, no href


def test_a_served_page_takes_plotly_from_the_given_url():
    import plotly.graph_objects as go

    url = "http://127.0.0.1:8000/static/vendor/plotly.min.js"
    page = qf.report(go.Figure()).to_html(plotly_src=url)
    parsed = _Page(page)
    assert parsed.links == [url] and url in parsed.csp
    assert len(page) < 20_000
