"""A run's report for a pull request or a person: Markdown or HTML, with plots.

It holds the QFlow run id and status, the experiment and run ids in every tracker the run
reported to (QFlow's own store included), the runtime (host, user, Python, platform,
executor, QFlow version, packages, command), links to the QFlow server, the trackers and the
CI run when they are known, a metrics table (last value, min, max, a sparkline), metric
histories and, against a baseline run, the metric deltas and what changed (config, code,
data, packages, outputs; from :func:`qflow.provenance.diff.diff_runs`).

Metric histories render without any hosting: in Markdown as Mermaid ``xychart-beta`` blocks
(GitHub draws Mermaid in comments; it does not show relative image links or ``data:`` images
there), in HTML as embedded PNGs. The PNGs are also written to ``plots/`` for people who
keep the report folder (the PR workflow uploads it as an artifact).

Baselines (``compare_to``): a run id or prefix; ``latest-on-branch`` (the newest other
succeeded run of the same workflow on the run's own git branch); ``branch:NAME``; ``base``
(``branch:$QFLOW_BASE_BRANCH``, which the PR workflow sets to the repository's default branch).
"""

from __future__ import annotations

import base64
import math
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qflow.ci.tracker_ids import tracker_ids
from qflow.errors import ConfigError, RunNotFoundError
from qflow.store.metadata.records import RunStatus

if TYPE_CHECKING:
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import Metric, Run

Format = Literal["markdown", "html"]
Series = list[tuple[float, float]]
_SPARKS = "▁▂▃▄▅▆▇█"
SERVER_URL_ENV = "QFLOW_SERVER_URL"


@dataclass
class ReportData:
    """Everything a report shows, before it is rendered."""

    run: Run
    trackers: list[dict[str, str]]
    metrics: list[dict[str, Any]]
    series: dict[str, Series] = field(default_factory=dict)
    """Each metric's (step, value) points, for the charts; metrics with two or more points."""
    runtime: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    """(label, http(s) URL): the QFlow server, the trackers, the CI run."""
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
    for candidate in metadata.list_runs(
        workflow=run.workflow, status=RunStatus.SUCCEEDED, limit=500
    ):
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


def metric_series(history: list[Metric]) -> dict[str, Series]:
    """(step, value) points of each metric with two or more finite values; a point logged
    without a step gets its position in that metric's history."""
    series: dict[str, Series] = {}
    for point in history:
        points = series.setdefault(point.key, [])
        if math.isfinite(point.value):
            x = float(point.step) if point.step is not None else float(len(points))
            points.append((x, point.value))
    return {k: v for k, v in sorted(series.items()) if len(v) >= 2}


def plot_histories(history: list[Metric], folder: Path) -> dict[str, Path]:
    """A PNG per metric with two or more points (matplotlib, Agg backend), by metric key."""
    series = metric_series(history)
    if not series:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    plots = {}
    for key, points in series.items():
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


_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def mask_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", text)


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _executor(run: Run) -> str:
    """The executor the run used, with its options from the config (``parallel (workers=4)``)."""
    name = _text(run.meta.get("executor"))
    configured = run.config.get("executor")
    options: dict[str, Any] = {}
    if isinstance(configured, dict):
        name = name or _text(configured.get("name") or configured.get("_target_"))
        options = {k: v for k, v in configured.items() if k not in ("name", "_target_")}
    elif isinstance(configured, str):
        name = name or configured
    detail = ", ".join(f"{k}={v}" for k, v in sorted(options.items()) if not isinstance(v, dict))
    return f"{name or 'local'}{f' ({detail})' if detail else ''}"


def runtime_rows(run: Run) -> list[tuple[str, str]]:
    """Where and how the run ran, from what was recorded with it."""
    meta = run.meta
    rows: list[tuple[str, str | None]] = [
        ("host", _text(run.host or meta.get("host"))),
        ("user", _text(run.user or meta.get("user"))),
        ("python", _text(meta.get("python"))),
        ("platform", _text(meta.get("platform"))),
        ("executor", _executor(run)),
        ("qflow", _text(meta.get("qflow"))),
    ]
    implementation = _text(meta.get("python_implementation"))
    if rows[2][1] and implementation:
        rows[2] = ("python", f"{rows[2][1]} ({implementation})")
    count, digest = meta.get("packages_count"), _text(meta.get("packages_hash"))
    if count is not None:
        rows.append(("packages", f"{count} installed{f' (hash {digest[:12]})' if digest else ''}"))
    command = _text(run.command or meta.get("command"))
    if command:
        rows.append(("command", command))
    return [(k, mask_credentials(v)) for k, v in rows if v]


def _http_url(url: str | None) -> str | None:
    """``url`` without user name and password, if it is an http(s) URL."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _tracker_link(ids: dict[str, str]) -> tuple[str, str] | None:
    name = ids.get("tracker")
    if name == "mlflow":
        base = _http_url(ids.get("tracking_uri"))
        experiment, run_id = ids.get("experiment_id"), ids.get("run_id")
        if base and experiment and run_id:
            return "MLflow run", f"{base}/#/experiments/{experiment}/runs/{run_id}"
    if name == "wandb" and ids.get("entity") and ids.get("project"):
        base = f"https://wandb.ai/{ids['entity']}/{ids['project']}"
        if ids.get("run_id"):
            return "W&B run", f"{base}/runs/{ids['run_id']}"
        if ids.get("group"):
            return "W&B group", f"{base}/groups/{ids['group']}"
    return None


def report_links(
    run: Run, trackers: list[dict[str, str]], server_url: str | None = None
) -> list[tuple[str, str]]:
    """Links to the run: the QFlow server (``server_url``, ``$QFLOW_SERVER_URL`` or
    ``$QFLOW_TRACKING_URI``), the trackers, and the GitHub Actions run that made the report."""
    links: list[tuple[str, str]] = []
    server = _http_url(
        server_url or os.environ.get(SERVER_URL_ENV) or os.environ.get("QFLOW_TRACKING_URI")
    )
    if server:
        links.append(("QFlow server", f"{server}/runs/{urllib.parse.quote(run.id)}"))
    for ids in trackers:
        found = _tracker_link(ids)
        if found is not None:
            links.append(found)
    github = _http_url(os.environ.get("GITHUB_SERVER_URL"))
    repository, ci_run = os.environ.get("GITHUB_REPOSITORY"), os.environ.get("GITHUB_RUN_ID")
    if github and repository and ci_run and ci_run.isdigit():
        links.append(("GitHub Actions run", f"{github}/{repository}/actions/runs/{ci_run}"))
    return [(label, url) for label, url in links if _SAFE_URL.fullmatch(url)]


_SAFE_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#@!$&*+,;=%-]+")
"""URLs that can go into Markdown links and HTML attributes as they are."""


def collect(
    metadata: MetadataStore,
    run: Run,
    *,
    compare_to: str | None = None,
    plots_dir: Path | None = None,
    project_root: Path | None = None,
    server_url: str | None = None,
) -> ReportData:
    """Gather a report's data; plots are written to ``plots_dir`` when given."""
    from qflow.provenance.diff import diff_runs

    baseline, note = resolve_baseline(metadata, run, compare_to)
    history = metadata.metrics(run.id)
    trackers = [
        {k: mask_credentials(v) for k, v in ids.items()} for ids in tracker_ids(run, project_root)
    ]
    data = ReportData(
        run=run,
        trackers=trackers,
        metrics=metric_rows(history, baseline.metrics_summary if baseline else None),
        series=metric_series(history),
        runtime=runtime_rows(run),
        links=report_links(run, trackers, server_url),
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
    server_url: str | None = None,
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
        server_url=server_url,
    )
    if fmt == "html":
        images = {k: base64.b64encode(p.read_bytes()).decode() for k, p in data.plots.items()}
        path, text = output / "report.html", render_html(data, images)
    else:
        path, text = output / "report.md", render_markdown(data)
    path.write_text(text, encoding="utf-8")
    return path
