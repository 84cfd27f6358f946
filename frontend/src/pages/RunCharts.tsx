// The runs page's chart view: one metric's history for the visible (or ticked) runs,
// overlaid and labelled by run name, with the group mean.
import { lazy, Suspense } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import { type Any, api } from "../api";
import { Fail, Muted } from "../ui";
import type { Series } from "../chart";

const Chart = lazy(() => import("../chart").then((m) => ({ default: m.Chart })));
const MAX_RUNS = 20;

function mean(series: Series[]): Series {
  const sums = new Map<number, [number, number]>();
  for (const s of series)
    s.x.forEach((x, i) => {
      const y = s.y[i];
      if (y === null) return;
      const [total, n] = sums.get(x) ?? [0, 0];
      sums.set(x, [total + y, n + 1]);
    });
  const xs = [...sums.keys()].sort((a, b) => a - b);
  return { label: "mean", x: xs, y: xs.map((x) => sums.get(x)![0] / sums.get(x)![1]) };
}

export function RunCharts({ runs, metrics }: { runs: Any[]; metrics: string[] }) {
  const [metric, setMetric] = useState(metrics[0] ?? "");
  const [series, setSeries] = useState<Series[] | null>(null);
  const [withMean, setWithMean] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const shown = runs.slice(0, MAX_RUNS);
  const ids = shown.map((r) => r.id).join(",");
  useEffect(() => {
    if (!metric) return;
    setSeries(null);
    Promise.all(
      shown.map(async (r) => {
        const h = await api(`/api/runs/${r.id}/history?key=${encodeURIComponent(metric)}`);
        return { label: r.name || r.id.slice(-8), x: h.x, y: h.y } as Series;
      }),
    )
      .then((all) => setSeries(all.filter((s) => s.x.length > 0)))
      .catch(setError);
  }, [metric, ids]);
  if (!metrics.length) return <Muted>These runs log no metrics.</Muted>;
  return (
    <div class="card" id="run-charts">
      <div class="toolbar">
        metric{" "}
        <select id="chart-metric" value={metric} onChange={(e) => setMetric((e.target as HTMLSelectElement).value)}>
          {metrics.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
        <label>
          <input type="checkbox" id="chart-mean" checked={withMean} onChange={() => setWithMean(!withMean)} /> group mean
        </label>
        <span class="muted">
          {shown.length} run{shown.length === 1 ? "" : "s"}
          {runs.length > MAX_RUNS ? ` (the first ${MAX_RUNS})` : ""}; click a legend entry to hide a run
        </span>
      </div>
      {error !== null && <Fail error={error} />}
      {series === null ? (
        <Muted>Loading…</Muted>
      ) : (
        <Suspense fallback={<Muted>Loading chart…</Muted>}>
          <Chart title={metric} testId="runs-overlay" series={withMean && series.length > 1 ? [...series, mean(series)] : series} height={320} />
        </Suspense>
      )}
    </div>
  );
}
