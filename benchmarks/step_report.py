"""What a step report costs: building a typical ``qf.report`` page (Markdown, a 1,000 x 10
DataFrame, a matplotlib figure, a Plotly figure) and rendering it for the dashboard's frame
and as the offline file (plotly.js embedded). Prints medians and minimums of wall and CPU
time over ``--repeat`` repeats, and the sizes."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.graph_objects as go

import qflow as qf
from qflow.tracking.report import Report


def measure(name: str, repeat: int, action: Callable[[], Any]) -> Any:
    walls, cpus = [], []
    result = action()  # warm-up
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(
        f"{name:<40} median {statistics.median(walls) * 1000:8.1f} ms (min "
        f"{min(walls) * 1000:.1f}), CPU {statistics.median(cpus) * 1000:.1f} ms"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(1000, 10)), columns=[f"c{i}" for i in range(10)])
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(rng.normal(size=500).cumsum())
    plotly_figure = go.Figure(go.Scatter(y=rng.normal(size=500).cumsum()))

    def build() -> Report:
        return qf.report("# Evaluation\n\nSome **text**.", frame, figure, plotly_figure)

    page = measure("build (4 blocks) + JSON", repeat, lambda: Report.from_json(build().to_json()))
    print(f"{'':<40} stored JSON: {len(build().to_json()):,} bytes")
    framed = measure(
        "render for the dashboard frame",
        repeat,
        lambda: page.to_html(plotly_src="http://127.0.0.1:8000/static/vendor/plotly.min.js"),
    )
    offline = measure("render the offline file", repeat, page.to_html)
    print(f"{'':<40} frame page {len(framed):,} characters, offline file {len(offline):,}")


if __name__ == "__main__":
    main()
