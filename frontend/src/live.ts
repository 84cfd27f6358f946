// A run's data for its page, kept live while the run runs: the server pushes changes over
// Server-Sent Events (/api/runs/RUN/stream: run, history, logs, end), so a logged point is
// drawn within the runtime's flush interval plus the server's 0.2 s look at the store. If the
// stream cannot be opened (a proxy that drops text/event-stream, an old browser), the page
// polls instead. A finished run is read once.
import { useEffect, useRef, useState } from "preact/hooks";
import { type Any, api, qs, sleep } from "./api";

export type History = { x: number[]; y: (number | null)[]; t: number[]; last: number; total: number; downsampled: boolean };
export type Transport = "" | "stream" | "poll";
export type RunData = {
  run: Any;
  error: unknown;
  histories: Record<string, History>;
  logs: Any[] | null;
  /** Changes when a step's status changes (the graph picture is drawn again then). */
  stepsVersion: string;
  /** How the page is kept live: "stream", "poll", or "" (the run is not running). */
  transport: Transport;
};

const POLL_MS = 500;

/** The history `h` (an answer of /history or a `history` event) merged into `old`. */
function merged(old: History | undefined, h: Any, replace: boolean): History {
  const t: number[] = h.timestamp || [];
  if (!replace && old)
    return {
      x: old.x.concat(h.x),
      y: old.y.concat(h.y),
      t: old.t.concat(t),
      last: h.last_id,
      total: old.total + h.total_points,
      downsampled: old.downsampled || h.downsampled,
    };
  return { x: h.x, y: h.y, t, last: h.last_id, total: h.total_points, downsampled: h.downsampled };
}

const stepStatuses = (run: Any) => run.steps.map((s: Any) => s.status).join(",");

export function useRunData(runId: string, withTime: boolean, reload: number): RunData {
  const [run, setRun] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  const [histories, setHistories] = useState<Record<string, History>>({});
  const [logs, setLogs] = useState<Any[] | null>(null);
  const [transport, setTransport] = useState<Transport>("");
  const hist = useRef<Record<string, History>>({});
  const base = "/api/runs/" + encodeURIComponent(runId);

  useEffect(() => {
    let stop = false;
    let source: EventSource | null = null;
    let frame = 0;
    let live = false; // subscribed to the stream, and the run has not ended
    hist.current = {};
    const full = withTime || null;

    async function fetchHistory(key: string, incremental: boolean) {
      const old = hist.current[key];
      const after = incremental && old ? old.last : 0;
      const h = await api(`${base}/history?` + qs({ key, after, full }));
      hist.current = { ...hist.current, [key]: merged(old, h, !after || h.downsampled) };
    }

    // Events come one task each: draw at most once a frame.
    function drawSoon() {
      if (!frame) frame = requestAnimationFrame(() => ((frame = 0), setHistories(hist.current)));
    }

    function subscribe() {
      live = true;
      source = new EventSource(`${base}/stream?` + qs({ full }));
      source.addEventListener("open", () => {
        setTransport("stream");
        setLogs((old) => old ?? []);
      });
      source.addEventListener("run", (e) => setRun(JSON.parse((e as MessageEvent).data)));
      source.addEventListener("history", (e) => {
        const h = JSON.parse((e as MessageEvent).data);
        hist.current = { ...hist.current, [h.key]: merged(hist.current[h.key], h, h.reset) };
        drawSoon();
      });
      source.addEventListener("logs", (e) => {
        const changed: Any[] = JSON.parse((e as MessageEvent).data);
        setLogs((old) => {
          const byName = new Map((old ?? []).map((s) => [s.name, s]));
          for (const s of changed) byName.set(s.name, s);
          return [...byName.values()];
        });
      });
      source.addEventListener("end", (e) => {
        source?.close(); // else EventSource would reconnect
        live = false;
        setTransport("");
        const end = JSON.parse((e as MessageEvent).data);
        if (end.error) {
          setRun(null); // removed meanwhile: say so rather than show it running
          setError(new Error(end.error));
        }
      });
      source.addEventListener("error", () => {
        // A dropped connection is retried by EventSource itself (the new stream starts with
        // the whole state); a refused one (readyState CLOSED) is not: poll instead.
        if (source?.readyState === EventSource.CLOSED && !stop) {
          source = null;
          live = false;
          poll();
        }
      });
    }

    async function poll() {
      setTransport("poll");
      const charted = (r: Any) => r.metric_keys.map((m: Any) => m.key);
      let current: Any = { status: "running" };
      while (!stop && current.status === "running") {
        try {
          current = await api(base);
          if (stop) return;
          setRun(current);
          await Promise.all(charted(current).map((k: string) => fetchHistory(k, k in hist.current)));
          setHistories(hist.current);
          setLogs(await api(`${base}/logs`));
        } catch {
          /* keep polling */
        }
        await sleep(POLL_MS);
      }
      if (!stop) setTransport("");
    }

    // A hidden tab lets go of its stream (browsers allow only six connections per server
    // over HTTP/1.1, and an open stream holds one); shown again, it subscribes afresh.
    function onVisibility() {
      if (!live) return;
      if (document.hidden) {
        source?.close();
        source = null;
      } else if (!source) subscribe();
    }
    document.addEventListener("visibilitychange", onVisibility);

    (async () => {
      let current: Any;
      try {
        current = await api(base);
      } catch (e) {
        setError(e);
        return;
      }
      if (stop) return;
      setRun(current);
      if (current.status === "running") {
        subscribe();
        return;
      }
      // One-point metrics are value tiles, not charts.
      const charted = current.metric_keys.filter((m: Any) => m.points > 1);
      await Promise.all(charted.map((m: Any) => fetchHistory(m.key, false))).catch(setError);
      if (stop) return;
      setHistories(hist.current);
      api(`${base}/logs`).then(setLogs).catch(() => setLogs([]));
    })();
    return () => {
      stop = true;
      document.removeEventListener("visibilitychange", onVisibility);
      source?.close();
      cancelAnimationFrame(frame);
    };
  }, [runId, withTime, reload]);

  return { run, error, histories, logs, stepsVersion: run ? stepStatuses(run) : "", transport };
}
