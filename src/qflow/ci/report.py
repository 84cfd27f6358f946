"""A run's report for a pull request or a person: Markdown or HTML, with plots.

It holds the QFlow run id and status, the tracker's experiment and run ids where they are
known, a metrics table (last value, min, max, a sparkline), metric-history plots (PNG files
next to the report; embedded as base64 in HTML) and, against a baseline run, the metric
deltas and what changed (config, code, data, packages, outputs; from
:func:`qflow.provenance.diff.diff_runs`).

Baselines (``compare_to``): a run id or prefix; ``latest-on-branch`` (the newest other
succeeded run of the same workflow on the run's own git branch); ``branch:NAME``; ``base``
(``branch:$QFLOW_BASE_BRANCH``, which the PR workflow sets to the repository's default branch).
"""

from __future__ import annotations

import base64
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qflow.ci.tracker_ids import tracker_ids
from qflow.errors import ConfigError, RunNotFoundError

if TYPE_CHECKING:
    from qflow.store.metadata.records import Metric, Run
    from qflow.store.metadata.store import MetadataStore

Format = Literal["markdown", "html"]
_SPARKS = "▁▂▃▄▅▆▇█"


@dataclass
class ReportData:
    """Everything a report shows, before it is rendered."""

    run: Run
    trackers: list[dict[str, str]]
    metrics: list[dict[str, Any]]
    plots: dict[str, Path] = field(default_factory=dict)
    baseline: Run | None = None
    baseline_note: str = ""
    diff: dict[str, Any] | None = None


def find_run(metadata: MetadataStore, run: str | None, tag: str | None = None) -> Run:
    """A run by id/prefix, or the newest run carrying tag ``key=value``."""
    if run is not None:
        return metadata.get_run(run)
    if tag is None:
        raise ConfigError("Say which run to report: RUN, or --tag key=value for the newest one.")
    key, sep, value = tag.partition("=")
    if not sep or not key:
        raise ConfigError(f"--tag {tag!r} must look like key=value.")
    found = metadata.list_runs(tags={key: value}, limit=1)
    if not found:
        raise RunNotFoundError(f"No run is tagged {key}={value}. Hint: qflow runs --tag {tag}")
    return found[0]


def _branch(run: Run) -> str | None:
    git = run.meta.get("git")
    branch = git.get("branch") if isinstance(git, dict) else None
    return str(branch) if branch else None


def _latest_on_branch(metadata: MetadataStore, run: Run, branch: str | None) -> Run | None:
    if branch is None:
        return None
    for candidate in metadata.list_runs(workflow=run.workflow, status="succeeded", limit=500):
        if candidate.id != run.id and _branch(candidate) == branch:
            return candidate
    return None


def resolve_baseline(
    metadata: MetadataStore, run: Run, compare_to: str | None
) -> tuple[Run | None, str]:
    """The run to compare against and a sentence saying how it was chosen (or why none)."""
    if not compare_to:
        return None, ""
    if compare_to in ("base", "latest-on-branch") or compare_to.startswith("branch:"):
        if compare_to == "base":
            branch = os.environ.get("QFLOW_BASE_BRANCH") or None
            if branch is None:
                raise ConfigError(
                    "--compare-to base needs QFLOW_BASE_BRANCH (the base branch's name). "
                    "Hint: --compare-to branch:main, or set QFLOW_BASE_BRANCH=main."
                )
        elif compare_to == "latest-on-branch":
            branch = _branch(run)
        else:
            branch = compare_to.removeprefix("branch:") or None
        found = _latest_on_branch(metadata, run, branch)
        if found is None:
            where = f"on branch {branch!r}" if branch else "(the run has no git branch)"
            return None, f"No earlier succeeded run of {run.workflow!r} {where} to compare with."
        return found, f"the latest succeeded run of {run.workflow!r} on branch {branch!r}"
    return metadata.get_run(compare_to), "the run asked for"


def sparkline(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    points = values if len(values) <= 40 else values[:: math.ceil(len(values) / 40)]
    return "".join(
        _SPARKS[int((v - low) / span * (len(_SPARKS) - 1))] if math.isfinite(v) else " "
        for v in points
    )


def metric_rows(history: list[Metric], baseline: dict[str, float] | None) -> list[dict[str, Any]]:
    """One row per metric key: last/min/max/points/sparkline, and the baseline delta."""
    by_key: dict[str, list[float]] = {}
    for point in history:
        by_key.setdefault(point.key, []).append(point.value)
    rows = []
    for key in sorted(by_key.keys() | (baseline or {}).keys()):
        values = by_key.get(key, [])
        finite = [v for v in values if math.isfinite(v)]
        row: dict[str, Any] = {
            "key": key,
            "last": values[-1] if values else None,
            "min": min(finite) if finite else None,
            "max": max(finite) if finite else None,
            "points": len(values),
            "spark": sparkline(values),
        }
        if baseline is not None:
            base = baseline.get(key)
            row["base"] = base
            last = row["last"]
            row["delta"] = last - base if last is not None and base is not None else None
            row["relative"] = (
                row["delta"] / abs(base) if row["delta"] is not None and base else None
            )
        rows.append(row)
    return rows


def _plot_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".png"


def plot_histories(history: list[Metric], folder: Path) -> dict[str, Path]:
    """A PNG per metric with two or more points (matplotlib, Agg backend), by metric key."""
    series: dict[str, list[tuple[float, float]]] = {}
    for index, point in enumerate(history):
        x = float(point.step) if point.step is not None else float(index)
        series.setdefault(point.key, []).append((x, point.value))
    series = {k: v for k, v in series.items() if len(v) >= 2}
    if not series:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    plots = {}
    for key, points in sorted(series.items()):
        figure = Figure(figsize=(5, 3), dpi=100)
        axes = figure.add_subplot()
        axes.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1.2)
        axes.set_title(key)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        path = folder / _plot_name(key)
        figure.savefig(path, format="png")
        plots[key] = path
    return plots


def collect(
    metadata: MetadataStore,
    run: Run,
    *,
    compare_to: str | None = None,
    plots_dir: Path | None = None,
    project_root: Path | None = None,
) -> ReportData:
    """Gather a report's data; plots are written to ``plots_dir`` when given."""
    from qflow.provenance.diff import diff_runs

    baseline, note = resolve_baseline(metadata, run, compare_to)
    history = metadata.metrics(run.id)
    data = ReportData(
        run=run,
        trackers=tracker_ids(run, project_root),
        metrics=metric_rows(history, baseline.metrics_summary if baseline else None),
        baseline=baseline,
        baseline_note=note,
    )
    if plots_dir is not None:
        data.plots = plot_histories(history, plots_dir)
    if baseline is not None:
        data.diff = diff_runs(metadata, baseline.id, run.id)
    return data


def write_report(
    metadata: MetadataStore,
    run: Run,
    output: Path,
    *,
    fmt: Format = "markdown",
    compare_to: str | None = None,
    project_root: Path | None = None,
) -> Path:
    """Write ``report.md`` or ``report.html`` (and ``plots/``) into folder ``output``."""
    from qflow.ci.render import render_html, render_markdown

    output.mkdir(parents=True, exist_ok=True)
    data = collect(
        metadata,
        run,
        compare_to=compare_to,
        plots_dir=output / "plots",
        project_root=project_root,
    )
    if fmt == "html":
        images = {k: base64.b64encode(p.read_bytes()).decode() for k, p in data.plots.items()}
        path, text = output / "report.html", render_html(data, images)
    else:
        relative = {k: p.relative_to(output).as_posix() for k, p in data.plots.items()}
        path, text = output / "report.md", render_markdown(data, relative)
    path.write_text(text, encoding="utf-8")
    return path
