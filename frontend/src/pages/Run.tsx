// One run: summary, metric table and value tiles, live charts (smoothing, log scale, x axis
// step / time / relative), step timeline with cache reasons, parameters and source runs,
// graph, config, artifacts tree with previews, and live logs. While the run is running the
// server pushes its changes (live.ts).
import { lazy, Suspense } from "preact/compat";
import { useEffect, useMemo, useState } from "preact/hooks";
import { type Any, api, bytes, flatten, fmt, post, secs, typeName, when } from "../api";
import { Badge, Fail, InViewImage, KV, Muted } from "../ui";
import type { Series, XMode } from "../chart";
import { type History, useRunData } from "../live";

const Chart = lazy(() => import("../chart").then((m) => ({ default: m.Chart })));

function Timeline({ run }: { run: Any }) {
  const steps = run.steps.filter((s: Any) => s.start !== null);
  const now = Date.now() / 1000;
  // A cached or instant step has duration 0 (not "still running"): only a running step
  // without an end is drawn up to now.
  const length = (s: Any) => (s.status === "running" && s.ended_at === null ? now - s.started_at : s.duration ?? 0);
  const end = Math.max(1e-3, ...steps.map((s: Any) => s.start + length(s)));
  return (
    <div class="timeline" id="timeline">
      {run.steps.map((s: Any) => (
        <details class="tl-step" key={s.id}>
          <summary class="tl-row">
            <div class="tl-name" title={s.name}>
              {s.name}
            </div>
            <div class="tl-track">
              {s.start !== null && (
                <div
                  class={"tl-bar " + s.status}
                  title={`${s.name}: ${s.status}, ${secs(s.duration)}`}
                  style={{ left: `${((100 * s.start) / end).toFixed(2)}%`, width: `${((100 * length(s)) / end).toFixed(2)}%` }}
                />
              )}
            </div>
            <div class="tl-info">
              <Badge status={s.status} /> {secs(s.duration)}
            </div>
          </summary>
          <div class="tl-detail">
            <a class="step-link" href={`/runs/${encodeURIComponent(run.id)}/steps/${encodeURIComponent(s.name)}`}>
              step page: report, outputs, logs
            </a>
            {s.reason && (
              <p class="reason">
                <strong>why:</strong> {s.reason}
              </p>
            )}
            {s.cached_from && (
              <p>
                <a href={`/step-runs/${s.cached_from}`}>cached from this step of an earlier run</a>
              </p>
            )}
            {s.attempts > 1 && <p>attempts: {s.attempts}</p>}
            {s.error && <div class="error">{s.error}</div>}
            <KV obj={s.params} />
          </div>
        </details>
      ))}
    </div>
  );
}

type Node = { name: string; children: Map<string, Node>; artifact?: Any };

function tree(artifacts: Any[]): Node {
  const root: Node = { name: "", children: new Map() };
  for (const a of artifacts) {
    const group = a.source === "output" ? a.step || "outputs" : "logged";
    const path = [group, ...(a.source === "output" ? [a.name.slice(a.step.length + 1) || a.name] : a.name.split("/"))];
    let node = root;
    for (const part of path) {
      if (!node.children.has(part)) node.children.set(part, { name: part, children: new Map() });
      node = node.children.get(part)!;
    }
    node.artifact = a;
  }
  return root;
}

function Artifacts({ run }: { run: Any }) {
  const [chosen, setChosen] = useState<Any>(null);
  if (!run.artifacts.length) return <Muted>(none)</Muted>;
  const draw = (node: Node, depth: number): Any =>
    [...node.children.values()].map((child) =>
      child.artifact ? (
        <li key={child.name} class="artifact">
          <button class="link" data-artifact={child.artifact.name} onClick={() => setChosen(child.artifact)}>
            {child.name}
          </button>{" "}
          <span class="muted">
            {typeName(child.artifact.type)} · {bytes(child.artifact.size)} · {child.artifact.pickled ? "pickle" : child.artifact.serializer}
          </span>
        </li>
      ) : (
        <li key={child.name}>
          <details open={depth < 2}>
            <summary>{child.name}/</summary>
            <ul class="tree">{draw(child, depth + 1)}</ul>
          </details>
        </li>
      ),
    );
  return (
    <div class="artifacts">
      <ul class="tree" id="artifact-tree">
        {draw(tree(run.artifacts), 0)}
      </ul>
      <div id="preview" class="card">
        {chosen ? <Preview run={run} artifact={chosen} key={chosen.key + chosen.name} /> : <Muted>Pick an artifact to preview it.</Muted>}
      </div>
    </div>
  );
}

function Preview({ run, artifact }: { run: Any; artifact: Any }) {
  const [p, setP] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  const raw = `/api/runs/${run.id}/artifacts/${artifact.key}/raw`;
  useEffect(() => {
    api(`/api/runs/${run.id}/artifacts/${artifact.key}/preview`).then(setP).catch(setError);
  }, []);
  const head = (
    <div class="toolbar">
      <h2>{artifact.name}</h2>
      <span class="muted">
        {typeName(artifact.type)} · {bytes(artifact.size)}
      </span>
      {artifact.serializer !== "collection" && <a href={raw}>download</a>}
      {artifact.source === "output" && <a href={`/lineage/${run.id}?target=${encodeURIComponent(artifact.name)}`}>lineage</a>}
    </div>
  );
  if (error) return <div>{head}<Fail error={error} /></div>;
  if (!p) return <div>{head}<Muted>Loading preview…</Muted></div>;
  let body: Any;
  if (p.kind === "image") body = <img src={raw} alt={artifact.name} style={{ maxWidth: "100%" }} />;
  else if (p.kind === "html")
    // A Plotly (or other HTML) figure runs in a sandboxed frame: scripts, but no access to
    // this origin's cookies, storage or API.
    body = <iframe class="figure" id="figure" sandbox="allow-scripts" src={`/api/runs/${run.id}/artifacts/${artifact.key}/figure`} title={artifact.name} />;
  else if (p.kind === "table")
    body = (
      <div>
        <div class="table-wrap">
          <table class="preview-table">
            <thead>
              <tr>{p.columns.map((c: string) => <th key={c}>{c}</th>)}</tr>
            </thead>
            <tbody>
              {p.rows.map((r: Any[], i: number) => (
                <tr key={i}>{r.map((v, j) => <td key={j}>{fmt(v)}</td>)}</tr>
              ))}
            </tbody>
          </table>
        </div>
        <Muted>{p.total_rows !== null ? `${p.rows.length} of ${p.total_rows} rows` : `first ${p.rows.length} rows`}</Muted>
      </div>
    );
  else if (p.kind === "json") body = <pre>{JSON.stringify(p.value, null, 2)}</pre>;
  else if (p.kind === "text") body = <div><pre>{p.text}</pre>{p.truncated && <Muted>(truncated)</Muted>}</div>;
  else body = <Muted>No preview: {p.reason}</Muted>;
  return <div>{head}{body}</div>;
}

function Logs({ entries }: { entries: Any[] | null }) {
  if (entries === null) return <Muted>Loading…</Muted>;
  const shown = entries.filter((s) => s.stdout || s.stderr || s.traceback);
  if (!shown.length) return <Muted>(no output yet)</Muted>;
  return (
    <div>
      {shown.map((s) => (
        <div key={s.name}>
          <strong>{s.name}</strong> <Badge status={s.status} />
          {s.stdout && <pre class="stdout">{s.stdout}</pre>}
          {s.stderr && <pre class="stderr">{s.stderr}</pre>}
          {s.traceback && <pre class="error">{s.traceback}</pre>}
        </div>
      ))}
    </div>
  );
}

function Name({ run, onSaved }: { run: Any; onSaved: () => void }) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(run.tags.name || "");
  const [note, setNote] = useState(run.tags.note || "");
  if (!editing)
    return (
      <div>
        {run.tags.note && <p id="note">{run.tags.note}</p>}
        <button class="link" id="edit-name" onClick={() => setEditing(true)}>
          edit name and notes
        </button>
      </div>
    );
  return (
    <div class="card edit">
      <label>
        name <input id="run-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        notes <textarea id="run-note" value={note} onInput={(e) => setNote((e.target as HTMLTextAreaElement).value)} />
      </label>
      <button
        class="primary"
        id="save-name"
        onClick={async () => {
          await post(`/api/runs/${run.id}/tags`, { tags: { name, note } });
          setEditing(false);
          onSaved();
        }}
      >
        Save
      </button>
    </div>
  );
}

export function RunPage({ runId }: { runId: string }) {
  const [xMode, setXMode] = useState<XMode>("step");
  const [log, setLog] = useState(false);
  const [smoothing, setSmoothing] = useState(0);
  const [reload, setReload] = useState(0);
  const { run, error, histories, logs, stepsVersion, transport } = useRunData(runId, xMode !== "step", reload);
  // A chart's series are rebuilt only when its own history changes: a live run re-renders the
  // page on every pushed change, and a chart given the same series does not redraw.
  const drawn = useMemo(() => new WeakMap<History, Series[]>(), [xMode]);
  useEffect(() => {
    import("../chart"); // fetch the chart code while the run and its histories load
  }, []);

  if (error && !run) return <Fail error={error} />;
  if (!run) return <Muted>Loading…</Muted>;
  const start = run.created_at;
  const tiles = run.metric_keys.filter((m: Any) => m.points === 1 && run.status !== "running");
  // A card per charted metric from the start (a placeholder until its history comes), so the
  // page does not jump and what lies below the charts (the graph) is not in view too early.
  const charted: string[] = run.metric_keys.filter((m: Any) => run.status === "running" || m.points > 1).map((m: Any) => m.key);
  const charts = charted.map((key) => [key, histories[key]] as [string, History | undefined]);
  const placeholder = (key: string) => (
    <div class="card chart-card chart-placeholder" key={key}>
      <strong>{key}</strong> <Muted>Loading…</Muted>
    </div>
  );
  const series = (key: string, h: History): Series[] => {
    if (!drawn.has(h)) {
      const x = xMode === "step" ? h.x : xMode === "time" ? h.t : h.t.map((t) => t - start);
      drawn.set(h, [{ label: key, x, y: h.y }]);
    }
    return drawn.get(h)!;
  };
  return (
    <div>
      <h1>
        {run.tags.name || run.workflow} <span class="muted">{run.id}</span>{" "}
        <span id="run-status" data-live={transport}>
          <Badge status={run.status} />
        </span>
      </h1>
      <p>
        {run.workflow} · started {when(run.created_at)} · {secs(run.duration)} · {run.user || ""}@{run.host || ""}
        {run.sweep_id && <> · sweep <a href={"/sweeps/" + encodeURIComponent(run.sweep_id)}>{run.sweep_id}</a></>}
        {run.meta?.git?.commit && <> · commit <code>{String(run.meta.git.commit).slice(0, 10)}</code></>}
        {" · "}
        <a href={"/compare?runs=" + encodeURIComponent(run.id)}>compare…</a>
      </p>
      <Name run={run} onSaved={() => setReload((n) => n + 1)} />
      {run.error && <div class="error">{run.error}</div>}
      <h2>Metrics</h2>
      {run.metric_keys.length === 0 ? (
        <Muted>(none)</Muted>
      ) : (
        <table id="metric-table">
          <thead>
            <tr>
              <th>metric</th>
              <th>latest</th>
              <th>points</th>
            </tr>
          </thead>
          <tbody>
            {run.metric_keys.map((m: Any) => (
              <tr key={m.key}>
                <td>{m.key}</td>
                <td class="num">{fmt(m.latest)}</td>
                <td class="num">{m.points}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {tiles.length > 0 && (
        <div class="tiles" id="tiles">
          {tiles.map((m: Any) => (
            <div class="tile" key={m.key} data-tile={m.key}>
              <div class="muted">{m.key}</div>
              <div class="value">{fmt(m.latest)}</div>
            </div>
          ))}
        </div>
      )}
      {charts.length > 0 && (
        <div>
          <div class="toolbar chart-controls">
            <label>
              x axis{" "}
              <select id="x-mode" value={xMode} onChange={(e) => setXMode((e.target as HTMLSelectElement).value as XMode)}>
                <option value="step">step</option>
                <option value="time">wall time</option>
                <option value="relative">relative time</option>
              </select>
            </label>
            <label>
              <input type="checkbox" id="log-scale" checked={log} onChange={() => setLog(!log)} /> log scale
            </label>
            <label>
              smoothing{" "}
              <input
                type="range"
                id="smoothing"
                min="0"
                max="0.99"
                step="0.01"
                value={smoothing}
                onInput={(e) => setSmoothing(Number((e.target as HTMLInputElement).value))}
              />{" "}
              {smoothing.toFixed(2)}
            </label>
          </div>
          <div class="grid" id="charts">
            <Suspense fallback={<>{charted.map(placeholder)}</>}>
              {charts.map(([key, h]) =>
                h ? <Chart key={key} title={key} series={series(key, h)} xMode={xMode} log={log} smoothing={smoothing} /> : placeholder(key),
              )}
            </Suspense>
          </div>
          {charts.some(([, h]) => h?.downsampled) && <Muted>Long histories are downsampled (min and max of each bucket kept).</Muted>}
        </div>
      )}
      <h2>Steps</h2>
      <Timeline run={run} />
      <h2>Graph</h2>
      <div class="graph">
        <InViewImage id="graph" src={`/api/runs/${run.id}/graph.svg?s=${encodeURIComponent(stepsVersion)}`} alt="workflow graph" />
      </div>
      <h2>Parameters</h2>
      <KV obj={run.params} id="params" />
      <h2>Config</h2>
      <KV obj={flatten(run.config)} id="config" />
      <h2>Tags</h2>
      <KV obj={run.tags} />
      <h2>Artifacts</h2>
      <Artifacts run={run} />
      <h2>Logs</h2>
      <div id="logs">
        <Logs entries={logs} />
      </div>
    </div>
  );
}

