// The runs page's chart view: one metric's history for the visible (or ticked) runs,
// overlaid and labelled by run name, or per group (the runs page's "group by" key, else all
// runs) as a mean line over a shaded min–max band.
import { lazy, Suspense } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import { type Any, api } from "../api";
import { Fail, Muted } from "../ui";
import type { Series } from "../chart";

const Chart = lazy(() => import("../chart").then((m) => ({ default: m.Chart })));
const MAX_RUNS = 20;

// Above this many distinct x values, a group is aggregated over this many equal-width bins of
// x (downsampled histories of different runs rarely share x values).
const BINS = 500;

/** A group's mean line over its min–max band, per x (or per bin of x) over its runs. */
function aggregate(label: string, series: Series[]): Series {
  const xs = [...new Set(series.flatMap((s) => s.x))].sort((a, b) => a - b);
  const lo = xs[0] ?? 0;
  const width = xs.length > BINS ? (xs[xs.length - 1] - lo) / BINS || 1 : 0;
  const at = (x: number) => (width ? lo + (Math.min(BINS - 1, Math.floor((x - lo) / width)) + 0.5) * width : x);
  const cells = new Map<number, { sum: number; n: number; min: number; max: number }>();
  for (const s of series)
    s.x.forEach((x, i) => {
      const y = s.y[i];
      if (y === null) return;
      const key = at(x);
      const cell = cells.get(key);
      if (!cell) cells.set(key, { sum: y, n: 1, min: y, max: y });
      else {
        cell.sum += y;
        cell.n += 1;
        cell.min = Math.min(cell.min, y);
        cell.max = Math.max(cell.max, y);
      }
    });
  const keys = [...cells.keys()].sort((a, b) => a - b);
  const of = (f: (c: { sum: number; n: number; min: number; max: number }) => number) => keys.map((k) => f(cells.get(k)!));
  return { label, x: keys, y: of((c) => c.sum / c.n), lo: of((c) => c.min), hi: of((c) => c.max) };
}

/** A run's value of `by` (`config.a.b`, `params.k`, `tags.k` or a plain field), as a label. */
function groupOf(run: Any, by: string): string {
  const [space, ...rest] = by.split(".");
  const key = rest.join(".");
  const value = ["config", "params", "tags"].includes(space) && key ? run[space]?.[key] : run[by];
  return value === undefined || value === null ? "(not set)" : typeof value === "string" ? value : JSON.stringify(value);
}

function groups(series: (Series & { group: string })[], by: string): Series[] {
  const members = new Map<string, Series[]>();
  for (const s of series) members.set(s.group, [...(members.get(s.group) ?? []), s]);
  const label = (g: string) => (by ? `${by}=${g}` : g) + ` (${members.get(g)!.length})`;
  return [...members.keys()].sort().map((g) => aggregate(label(g), members.get(g)!));
}

export function RunCharts({ runs, metrics, groupBy }: { runs: Any[]; metrics: string[]; groupBy: string }) {
  const [metric, setMetric] = useState(metrics[0] ?? "");
  const [series, setSeries] = useState<(Series & { group: string })[] | null>(null);
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
        return { label: r.name || r.id.slice(-8), x: h.x, y: h.y, group: groupBy ? groupOf(r, groupBy) : "all runs" };
      }),
    )
      .then((all) => setSeries(all.filter((s) => s.x.length > 0)))
      .catch(setError);
  }, [metric, ids, groupBy]);
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
          <input type="checkbox" id="chart-mean" checked={withMean} onChange={() => setWithMean(!withMean)} />{" "}
          {groupBy ? `mean and min–max per ${groupBy}` : "mean and min–max of the runs"}
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
          <Chart title={metric} testId="runs-overlay" series={withMean ? groups(series, groupBy) : series} height={320} />
        </Suspense>
      )}
    </div>
  );
}
