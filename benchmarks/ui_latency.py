"""Log-to-screen latency of the dashboard: time from ``qf.log_metric`` in a running step to the
point drawn on the run page, in Debian's headless Chromium (Playwright).

``qflow server`` serves a fresh project; ``qflow run`` (its own process, as a user starts it)
runs a step that logs one point every ``--gap`` seconds and writes the wall time of each call
to a file. Two pages watch the run at once, so both see the same points under the same load:
one kept live by server push (the run's event stream) and one forced onto the polling fallback
(its stream request answered 503). In each page a MutationObserver notes, at the next animation
frame after the chart's point count changes, the wall time and the count. Latency of point i is
that time minus the time ``qf.log_metric`` was called for it. Reports medians and maxima, the
load average and the server's CPU time.

The runtime flushes metrics to the store every 0.25 s (``FLUSH_EVERY_SECONDS``), the stream
looks at the store every 0.2 s and the fallback polls every 0.5 s: expect about half of each on
top of drawing.

    .venv/bin/python benchmarks/ui_latency.py [--points 20] [--gap 0.3] [--executor parallel]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKEN = "latency-bench-token-0123"
CHROMIUM = "/usr/bin/chromium"
WORKFLOW = """
import json
import os
import time

import qflow as qf


@qf.step
def train(points: int, gap: float, times: str) -> int:
    logged = []
    for i in range(points):
        logged.append(time.time())
        qf.log_metric("loss", 1.0 / (i + 1), step=i)
        time.sleep(gap)
    with open(times, "w") as f:
        json.dump(logged, f)
    return points


@qf.workflow
def latency(cfg):
    return train(cfg.points, cfg.gap, cfg.times)
"""
# Installed before the page's own scripts: notes when each new point count is on screen.
OBSERVER = """
window.__seen = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    const n = Number(change.target.getAttribute("data-points"));
    requestAnimationFrame(() => window.__seen.push([n, Date.now() / 1000]));
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-points"],
                       childList: true });
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (root / ".qflow").mkdir(parents=True, exist_ok=True)
    token_file = root / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qflow",
            "server",
            "--store",
            f"sqlite:///{root / '.qflow' / 'qflow.db'}",
            "--artifacts",
            str(root / ".qflow" / "artifacts"),
            "--port",
            str(port),
            "--token-file",
            str(token_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1)
            return server, url
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("qflow server did not start") from None
            time.sleep(0.1)


def first_running_run(url: str) -> str:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = httpx.get(f"{url}/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        if runs["runs"]:
            return str(runs["runs"][0]["id"])
        time.sleep(0.05)
    raise SystemExit("the run did not start")


def arrivals(seen: list[list[float]]) -> dict[int, float]:
    """Point index -> when it was first on screen (a count n shows points 0..n-1)."""
    first: dict[int, float] = {}
    for count, when in seen:
        for i in range(int(count)):
            first.setdefault(i, when)
    return first


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between points")
    parser.add_argument("--executor", default="parallel", choices=["local", "parallel"])
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="qflow-ui-latency-"))
    (root / "pyproject.toml").write_text(
        '[project]\nname = "latency"\n[tool.qflow]\nworkflow-modules = ["latencywf"]\n'
    )
    (root / "latencywf.py").write_text(WORKFLOW)
    (root / "conf").mkdir()
    times = root / "times.json"
    (root / "conf" / "latency.yaml").write_text(
        f"points: {args.points}\ngap: {args.gap}\ntimes: {json.dumps(str(times))}\n"
    )
    server, url = start_server(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
            )
            # Warm the server and the browser's cache of the app before the run starts.
            pages = {}
            for mode in ("stream", "poll"):
                context = browser.new_context(bypass_csp=True)
                context.add_cookies([{"name": "qflow_token", "value": TOKEN, "url": url}])
                page = context.new_page()
                page.goto(f"{url}/runs")
                page.wait_for_selector("#runs")
                page.add_init_script(OBSERVER)
                if mode == "poll":
                    page.route("**/stream*", lambda route: route.fulfill(status=503))
                pages[mode] = page
            cpu_before = server_cpu(server.pid)
            run = subprocess.Popen(
                [sys.executable, "-m", "qflow", "run", "latency", "--executor", args.executor],
                cwd=root,
                env={**env, "NO_COLOR": "1"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            run_id = first_running_run(url)
            for mode, page in pages.items():
                page.goto(f"{url}/runs/{run_id}")
                page.wait_for_selector(f"#run-status[data-live='{mode}']", timeout=30_000)
            if run.wait(timeout=600) != 0:
                raise SystemExit("the run failed")
            for page in pages.values():
                page.wait_for_selector("#run-status .status.succeeded", timeout=30_000)
                page.wait_for_selector(f"[data-points='{args.points}']", timeout=30_000)
            cpu = server_cpu(server.pid) - cpu_before
            logged = json.loads(times.read_text())
            load = os.getloadavg()
            print(
                f"{args.points} points, one every {args.gap} s, {args.executor} executor; "
                f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
                f"server CPU {cpu:.2f} s for both pages"
            )
            for mode, page in pages.items():
                first = arrivals(page.evaluate("window.__seen"))
                # Points logged before the page opened arrive with its first draw: left out.
                opened = min(first.values())
                latencies = [
                    first[i] - t for i, t in enumerate(logged) if i in first and t > opened
                ]
                median = statistics.median(latencies)
                verdict = "met" if median <= 1.0 else "MISSED"
                print(
                    f"{mode:7s} points {len(latencies):3d}  median {median:.3f} s"
                    f"  max {max(latencies):.3f} s  (target ≤ 1 s: {verdict})"
                )
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
