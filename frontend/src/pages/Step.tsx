// One step run of a run: status, timing, cache reason, parameters, outputs, its logs and its
// report (qf.report). The report is HTML the server renders from stored data with raw HTML
// escaped; it is still shown only in a sandboxed frame (scripts for Plotly, but an opaque
// origin: no cookies, storage or API of this server) and can be downloaded as one offline file.
// While the run is running the page polls, and the frame reloads when the step reports again.
import { useEffect, useState } from "preact/hooks";
import { type Any, api, bytes, secs, sleep, typeName } from "../api";
import { Badge, Fail, KV, Muted, RunLink } from "../ui";

const POLL_MS = 1000;
type Listed = { step: string; key: string };

export function StepPage({ runId, step }: { runId: string; step: string }) {
  const [run, setRun] = useState<Any>(null);
  const [reports, setReports] = useState<Listed[] | null>(null);
  const [logs, setLogs] = useState<Any[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let stop = false;
    const id = encodeURIComponent(runId);
    (async () => {
      while (!stop) {
        let current: Any;
        try {
          const [r, listed] = await Promise.all([api(`/api/runs/${id}`), api<Listed[]>(`/api/runs/${id}/reports`)]);
          current = r;
          setRun(r);
          setReports(listed);
        } catch (e) {
          setError(e);
          return;
        }
        api(`/api/runs/${id}/logs?step=${encodeURIComponent(step)}`).then(setLogs).catch(() => setLogs([]));
        if (current.status !== "running") return;
        await sleep(POLL_MS);
      }
    })();
    return () => {
      stop = true;
    };
  }, [runId, step]);
  if (error) return <Fail error={error} />;
  if (!run || reports === null) return <Muted>Loading…</Muted>;
  // The step run's name ("3_fit"), or the step's when it ran once, as the CLI takes them.
  const named = run.steps.filter((x: Any) => x.name === step || x.step === step);
  const s = named.find((x: Any) => x.name === step) || (named.length === 1 ? named[0] : null);
  if (!s) return <Fail error={`Run ${run.id} has no step ${step}.`} />;
  const report = `/api/runs/${encodeURIComponent(run.id)}/steps/${encodeURIComponent(s.name)}/report`;
  const listed = reports.find((r) => r.step === s.name);
  const log = logs?.[0];
  return (
    <div>
      <h1>
        {s.name} <span class="muted">step of</span> <RunLink id={run.id} label={run.tags.name || run.workflow} />{" "}
        <Badge status={s.status} />
      </h1>
      <p>
        {secs(s.duration)}
        {s.attempts > 1 && <> · {s.attempts} attempts</>}
      </p>
      {s.reason && (
        <p class="reason">
          <strong>why:</strong> {s.reason}
        </p>
      )}
      {s.error && <div class="error">{s.error}</div>}
      <h2>Report</h2>
      {listed ? (
        <div>
          <div class="toolbar">
            <a id="report-download" href={report + "?download=1"} download>
              download HTML
            </a>
          </div>
          <iframe
            class="report"
            id="report"
            key={listed.key}
            sandbox="allow-scripts"
            src={`${report}?v=${listed.key.slice(0, 12)}`}
            title={`report of ${s.name}`}
          />
        </div>
      ) : (
        <Muted>This step made no report (qf.report).</Muted>
      )}
      <h2>Parameters</h2>
      <KV obj={s.params} />
      <h2>Outputs</h2>
      <KV
        obj={Object.fromEntries(
          Object.entries(s.outputs).map(([k, v]: [string, Any]) => [k, `${typeName(v.type)} · ${bytes(v.size)}`]),
        )}
      />
      <h2>Logs</h2>
      {log && (log.stdout || log.stderr || log.traceback) ? (
        <div>
          {log.stdout && <pre class="stdout">{log.stdout}</pre>}
          {log.stderr && <pre class="stderr">{log.stderr}</pre>}
          {log.traceback && <pre class="error">{log.traceback}</pre>}
        </div>
      ) : (
        <Muted>(no output)</Muted>
      )}
    </div>
  );
}
