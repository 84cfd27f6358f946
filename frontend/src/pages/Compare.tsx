// Runs side by side: config and param differences highlighted ("differences only" toggle),
// latest metrics, metric overlays labelled by run name, parallel coordinates and a scatter
// of any two columns.
import { lazy, Suspense } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import { type Any, api, fmt } from "../api";
import { Fail, Muted, RunLink } from "../ui";
import type { Series } from "../chart";

const Chart = lazy(() => import("../chart").then((m) => ({ default: m.Chart })));
const Plots = lazy(() => import("../plots"));

export function label(r: Any): string {
  return r.name || r.id.slice(-8);
}

function Diff({ title, id, keys, differing, runs, value }: { title: string; id: string; keys: string[]; differing: string[]; runs: Any[]; value: (r: Any, k: string) => unknown }) {
  const [only, setOnly] = useState(false);
  const shown = only ? keys.filter((k) => differing.includes(k)) : keys;
  return (
    <div>
      <h2>
        {title} <span class="muted">({differing.length} differ)</span>{" "}
        <label class="small">
          <input type="checkbox" checked={only} onChange={() => setOnly(!only)} /> differences only
        </label>
      </h2>
      {keys.length === 0 ? (
        <Muted>(none)</Muted>
      ) : (
        <table id={id}>
          <thead>
            <tr>
              <th>key</th>
              {runs.map((r) => (
                <th key={r.id}>
                  <RunLink id={r.id} label={label(r)} />
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((k) => (
              <tr key={k} class={differing.includes(k) ? "diff" : ""}>
                <td>{k}</td>
                {runs.map((r) => (
                  <td key={r.id}>{fmt(value(r, k))}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function ComparePage() {
  const ids = new URLSearchParams(location.search).getAll("runs");
  const [data, setData] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  const [overlays, setOverlays] = useState<Record<string, Series[]>>({});
  useEffect(() => {
    if (!ids.length) return;
    api("/api/compare?" + ids.map((i) => "runs=" + encodeURIComponent(i)).join("&"))
      .then(async (d) => {
        setData(d);
        const out: Record<string, Series[]> = {};
        for (const key of d.metric_keys) {
          out[key] = await Promise.all(
            d.runs.map(async (r: Any) => {
              const h = await api(`/api/runs/${r.id}/history?key=${encodeURIComponent(key)}`);
              return { label: label(r), x: h.x, y: h.y };
            }),
          );
        }
        setOverlays(out);
      })
      .catch(setError);
  }, []);
  if (!ids.length) return <div><h1>Compare</h1><Muted>Pick runs in the runs table.</Muted></div>;
  if (error) return <Fail error={error} />;
  if (!data) return <Muted>Loading…</Muted>;
  const columns: Record<string, (number | null)[]> = {};
  const numeric = (values: unknown[]) => values.every((v) => v === null || v === undefined || typeof v === "number") && values.some((v) => typeof v === "number");
  for (const k of data.config_keys) {
    const values = data.runs.map((r: Any) => r.config[k] ?? null);
    if (numeric(values)) columns["config." + k] = values;
  }
  for (const k of data.param_keys) {
    const values = data.runs.map((r: Any) => r.params[k] ?? null);
    if (numeric(values)) columns["params." + k] = values;
  }
  for (const k of data.metric_keys) columns["metrics." + k] = data.runs.map((r: Any) => r.metrics[k] ?? null);
  return (
    <div>
      <h1>Compare {data.runs.length} runs</h1>
      <Diff title="Config" id="config-diff" keys={data.config_keys} differing={data.differing_config} runs={data.runs} value={(r, k) => r.config[k]} />
      <Diff title="Parameters" id="param-diff" keys={data.param_keys} differing={data.differing_params} runs={data.runs} value={(r, k) => r.params[k]} />
      <Diff title="Metrics (latest)" id="metric-diff" keys={data.metric_keys} differing={[]} runs={data.runs} value={(r, k) => r.metrics[k]} />
      <Suspense fallback={<Muted>Loading charts…</Muted>}>
        <Plots columns={columns} labels={data.runs.map(label)} />
        <h2>Metric histories</h2>
        <div class="grid" id="overlays">
          {Object.entries(overlays).map(([key, series]) => (
            <Chart key={key} title={key} series={series} />
          ))}
        </div>
      </Suspense>
    </div>
  );
}
