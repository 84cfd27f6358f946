"""A metric across runs (noWorkflow's variable-across-trials): values per run, and a chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import InvalidValueError

if TYPE_CHECKING:
    import pandas as pd

    from qflow.store.contract import MetadataStore


def metric_across(
    metadata: MetadataStore,
    key: str,
    *,
    workflow: str | None = None,
    runs: list[str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """One row per run that logged ``key``, oldest first: last value, min, max, history."""
    if runs:
        records = [metadata.get_run(r) for r in runs]
    else:
        records = metadata.list_runs(workflow=workflow, limit=limit)
    rows = []
    for run in sorted(records, key=lambda r: (r.created_at, r.id)):
        history = metadata.metrics(run.id, key)
        if not history:
            continue
        values = [m.value for m in history]
        finite = [v for v in values if not math.isnan(v)] or [math.nan]
        rows.append(
            {
                "run_id": run.id,
                "workflow": run.workflow,
                "status": run.status,
                "created_at": run.created_at,
                "value": values[-1],
                "min": min(finite),
                "max": max(finite),
                "points": len(values),
                "history": [[m.step, m.value] for m in history],
            }
        )
    return rows


def to_pandas(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame (without the histories)."""
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in r.items() if k != "history"} for r in rows])


def plot(rows: list[dict[str, Any]], key: str, path: str | Path) -> Path:
    """Save a chart: the last value per run in run order, and each run's history if it has
    more than one point. The format follows the file suffix (png, svg, pdf)."""
    if not rows:
        raise InvalidValueError(f"No run logged metric {key!r}; there is nothing to plot.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r for r in rows if r["points"] > 1]
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(11 if curves else 6, 4))
    across = axes[0] if curves else axes
    labels = [r["run_id"][-6:] for r in rows]
    across.plot(range(len(rows)), [r["value"] for r in rows], marker="o")
    across.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize=7)
    across.set_title(f"{key}: last value per run")
    across.set_xlabel("run (oldest → newest)")
    if curves:
        for row in curves:
            steps = [s if s is not None else i for i, (s, _) in enumerate(row["history"])]
            axes[1].plot(steps, [v for _, v in row["history"]], label=row["run_id"][-6:])
        axes[1].set_title(f"{key}: history")
        axes[1].set_xlabel("step")
        if len(curves) <= 10:
            axes[1].legend(fontsize=7)
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    plt.close(fig)
    return target
