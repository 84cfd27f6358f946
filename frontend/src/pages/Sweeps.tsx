// Sweeps: the list, and one sweep's trials table, best trial, optimisation history (each
// trial's value and the best so far) and fANOVA parameter importances.
import { lazy, Suspense } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import { type Any, api, fmt, secs } from "../api";
import { Badge, Fail, Muted, RunLink } from "../ui";

const Chart = lazy(() => import("../chart").then((m) => ({ default: m.Chart })));

export function SweepsPage() {
  const [sweeps, setSweeps] = useState<Any[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api("/api/sweeps").then(setSweeps).catch(setError);
  }, []);
  if (error) return <div><h1>Sweeps</h1><Fail error={error} /></div>;
  if (!sweeps) return <Muted>Loading…</Muted>;
  return (
    <div>
      <h1>Sweeps</h1>
      {sweeps.length === 0 ? (
        <Muted>No sweeps yet: qflow sweep WORKFLOW --trials 20</Muted>
      ) : (
        <table id="sweeps">
          <thead>
            <tr>
              {["sweep", "workflow", "objective", "direction", "trials", "best", "started"].map((h) => (
                <th key={h}>{h}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {sweeps.map((s) => (
              <tr key={s.id}>
                <td>
                  <a href={"/sweeps/" + encodeURIComponent(s.id)}>{s.id}</a>
                </td>
                <td>{s.workflow}</td>
                <td>{s.objective}</td>
                <td>{s.direction}</td>
                <td class="num">
                  {s.trials}
                  {s.target ? ` / ${s.target}` : ""}
                </td>
                <td class="num">{fmt(s.best_value)}</td>
                <td>{s.started ? new Date(s.started).toLocaleString() : "-"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function SweepPage({ sweepId }: { sweepId: string }) {
  const [s, setS] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api("/api/sweeps/" + encodeURIComponent(sweepId)).then(setS).catch(setError);
  }, []);
  if (error) return <Fail error={error} />;
  if (!s) return <Muted>Loading…</Muted>;
  const keys = Object.keys(s.params || {}).length ? Object.keys(s.params) : [...new Set(s.trials.flatMap((t: Any) => Object.keys(t.params)))];
  const done = s.trials.filter((t: Any) => t.value !== null && t.value !== undefined);
  const better = (a: number, b: number) => (s.direction === "maximize" ? Math.max(a, b) : Math.min(a, b));
  let best: number | null = null;
  const bestSoFar = done.map((t: Any) => (best = best === null ? t.value : better(best, t.value)));
  const importances = Object.entries(s.importances || {}) as [string, number][];
  return (
    <div>
      <h1>
        Sweep {s.id} <span class="muted">{s.workflow}</span>
      </h1>
      <p>
        {s.direction} <code>{s.objective}</code> · sampler {s.sampler || "-"} · {s.trials.length}
        {s.target ? ` of ${s.target}` : ""} trials ·{" "}
        {Object.entries(s.states || {})
          .map(([k, v]) => `${v} ${k}`)
          .join(", ")}
      </p>
      <h2>Best trial</h2>
      {s.best ? (
        <div class="card" id="best">
          trial {s.best.number}: <strong>{fmt(s.best.value)}</strong> {s.best.run_id && <>· run <RunLink id={s.best.run_id} /></>}
          <div class="muted">{Object.entries(s.best.params).map(([k, v]) => `${k}=${fmt(v)}`).join(", ")}</div>
        </div>
      ) : (
        <Muted>No finished trial yet.</Muted>
      )}
      <div class="grid">
        {done.length > 0 && (
          <Suspense fallback={<Muted>Loading chart…</Muted>}>
            <Chart
              title="optimisation history"
              testId="history"
              xLabel="trial"
              series={[
                { label: s.objective || "value", x: done.map((t: Any) => t.number), y: done.map((t: Any) => t.value) },
                { label: "best so far", x: done.map((t: Any) => t.number), y: bestSoFar },
              ]}
            />
          </Suspense>
        )}
        <div class="card" id="importances">
          <strong>parameter importances</strong> <span class="muted">(fANOVA)</span>
          {importances.length ? (
            importances.map(([k, v]) => (
              <div class="bar-row" key={k}>
                <span class="bar-label">{k}</span>
                <span class="bar" style={{ width: `${Math.max(1, v * 100)}%` }} />
                <span class="num">{v.toFixed(3)}</span>
              </div>
            ))
          ) : (
            <Muted>Needs at least two finished trials with varying parameters.</Muted>
          )}
        </div>
      </div>
      <h2>Trials</h2>
      <div class="table-wrap">
        <table id="trials">
          <thead>
            <tr>
              <th>#</th>
              <th>state</th>
              <th>{s.objective || "value"}</th>
              {keys.map((k: Any) => (
                <th key={k}>{k}</th>
              ))}
              <th>duration</th>
              <th>run</th>
            </tr>
          </thead>
          <tbody>
            {s.trials.map((t: Any) => (
              <tr key={t.number} class={s.best && t.number === s.best.number ? "best" : ""}>
                <td>{t.number}</td>
                <td>
                  <Badge status={t.state} />
                </td>
                <td class="num">{fmt(t.value)}</td>
                {keys.map((k: Any) => (
                  <td key={k} class="num">
                    {fmt(t.params[k])}
                  </td>
                ))}
                <td class="num">{secs(t.duration)}</td>
                <td>{t.run_id ? <RunLink id={t.run_id} /> : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {s.trials.length > 1 && (
        <p>
          <a href={"/compare?" + s.trials.filter((t: Any) => t.run_id).slice(0, 20).map((t: Any) => "runs=" + encodeURIComponent(t.run_id)).join("&")}>compare the trials' runs…</a>
        </p>
      )}
    </div>
  );
}
