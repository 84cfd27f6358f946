// Line charts with uPlot (fast at 100,000 points, ~50 KB): one or more series over a shared
// x axis, optional EMA smoothing and log scale, PNG and CSV export, a fullscreen toggle.
// This module is a separate chunk: only pages that draw charts load it.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useRef, useState } from "preact/hooks";

export type Series = { label: string; x: number[]; y: (number | null)[] };
export type XMode = "step" | "time" | "relative";
export const COLOURS = ["#2f6fde", "#e8590c", "#2b8a3e", "#c2255c", "#5f3dc4", "#0b7285", "#e67700", "#495057"];

/** Exponential moving average with weight `w` in [0, 1) (0: none), skipping nulls. */
export function smooth(y: (number | null)[], w: number): (number | null)[] {
  if (w <= 0) return y;
  let last: number | null = null;
  return y.map((v) => {
    if (v === null) return null;
    last = last === null ? v : last * w + (1 - w) * v;
    return last;
  });
}

/** Series on one shared, sorted x axis (uPlot's data layout). */
function align(series: Series[]): uPlot.AlignedData {
  if (series.length === 1) return [series[0].x, series[0].y] as uPlot.AlignedData;
  const xs = [...new Set(series.flatMap((s) => s.x))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const out: (number | null)[] = new Array(xs.length).fill(null);
    s.x.forEach((x, i) => (out[index.get(x)!] = s.y[i]));
    return out;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}

function csv(series: Series[]): string {
  const lines = ["series,x,y"];
  for (const s of series) s.x.forEach((x, i) => lines.push(`"${s.label.replace(/"/g, '""')}",${x},${s.y[i] ?? ""}`));
  return lines.join("\n");
}

function download(name: string, href: string) {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  a.click();
}

export function Chart(props: {
  series: Series[];
  title: string;
  xMode?: XMode;
  log?: boolean;
  smoothing?: number;
  height?: number;
  testId?: string;
  xLabel?: string;
}) {
  const holder = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [full, setFull] = useState(false);
  const { series, xMode = "step", log = false, smoothing = 0 } = props;
  const height = full ? Math.max(300, window.innerHeight - 120) : props.height ?? 260;
  const shapeKey = `${series.map((s) => s.label).join("|")}:${xMode}:${log}:${full}`;

  useEffect(() => {
    const node = holder.current!;
    const width = Math.max(300, node.clientWidth || 440);
    const opts: uPlot.Options = {
      width,
      height,
      scales: { x: { time: xMode === "time" }, y: log ? { distr: 3 } : {} },
      axes: [{ label: props.xLabel ?? (xMode === "step" ? "step" : xMode === "time" ? "" : "seconds") }, {}],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLOURS[i % COLOURS.length],
          width: 1.5,
          points: { show: s.x.length < 50 },
        })),
      ],
      legend: { show: series.length > 1 },
    };
    plot.current?.destroy();
    plot.current = new uPlot(opts, data(), node);
    (node as unknown as { points: () => number }).points = () => series.reduce((n, s) => n + s.x.length, 0);
    const resize = () => plot.current?.setSize({ width: Math.max(300, node.clientWidth), height });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, [shapeKey]);

  function data(): uPlot.AlignedData {
    return align(series.map((s) => ({ ...s, y: smooth(s.y, smoothing) })));
  }

  useEffect(() => {
    plot.current?.setData(data());
    const node = holder.current as unknown as { points: () => number };
    if (node) node.points = () => series.reduce((n, s) => n + s.x.length, 0);
  }, [series, smoothing]);

  const points = series.reduce((n, s) => n + s.x.length, 0);
  return (
    <div class={"card chart-card" + (full ? " fullscreen" : "")} data-metric={props.testId ?? props.title}>
      <div class="chart-head">
        <strong>{props.title}</strong>
        <span class="muted" data-points={points}>
          {points} points
        </span>
        <span class="sep" />
        <button class="link" title="reset zoom" onClick={() => plot.current?.setData(data(), true)}>
          reset
        </button>
        <button
          class="link"
          onClick={() => {
            const canvas = holder.current?.querySelector("canvas");
            if (canvas) download(`${props.title}.png`, canvas.toDataURL("image/png"));
          }}
        >
          PNG
        </button>
        <button
          class="link"
          onClick={() => download(`${props.title}.csv`, URL.createObjectURL(new Blob([csv(series)], { type: "text/csv" })))}
        >
          CSV
        </button>
        <button class="link" onClick={() => setFull(!full)}>
          {full ? "close" : "fullscreen"}
        </button>
      </div>
      <div ref={holder} class="uplot-holder" />
    </div>
  );
}
