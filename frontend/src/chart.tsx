// Line charts with uPlot (fast at 100,000 points, ~50 KB): one or more series over a shared
// x axis, each optionally over a shaded band (a group's min–max), optional EMA smoothing and
// log scale, PNG and CSV export, a fullscreen toggle.
// This module is a separate chunk: only pages that draw charts load it.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useRef, useState } from "preact/hooks";

/** A line; with `lo` and `hi` (one per x) it is drawn over a shaded band between them. */
export type Series = { label: string; x: number[]; y: (number | null)[]; lo?: (number | null)[]; hi?: (number | null)[] };
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

/** A series' data columns: its y, then its band's lower and upper edges if it has one. */
function columns(s: Series): (number | null)[][] {
  return s.lo && s.hi ? [s.y, s.lo, s.hi] : [s.y];
}

/** Series on one shared, sorted x axis (uPlot's data layout). */
function align(series: Series[]): uPlot.AlignedData {
  if (series.length === 1) return [series[0].x, ...columns(series[0])] as uPlot.AlignedData;
  const xs = [...new Set(series.flatMap((s) => s.x))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const out = series.flatMap((s) =>
    columns(s).map((ys) => {
      const column: (number | null)[] = new Array(xs.length).fill(null);
      s.x.forEach((x, i) => (column[index.get(x)!] = ys[i]));
      return column;
    }),
  );
  return [xs, ...out] as uPlot.AlignedData;
}

function csv(series: Series[]): string {
  const lines = ["series,x,y,min,max"];
  const cell = (v: number | null | undefined) => (v === null || v === undefined ? "" : String(v));
  for (const s of series)
    s.x.forEach((x, i) => lines.push(`"${s.label.replace(/"/g, '""')}",${x},${cell(s.y[i])},${cell(s.lo?.[i])},${cell(s.hi?.[i])}`));
  return lines.join("\n");
}

/** uPlot's series options and the bands (shaded between a series' lower and upper edges). */
function layout(series: Series[]): { series: uPlot.Series[]; bands: uPlot.Band[] } {
  const out: uPlot.Series[] = [{}];
  const bands: uPlot.Band[] = [];
  series.forEach((s, i) => {
    const stroke = COLOURS[i % COLOURS.length];
    out.push({ label: s.label, stroke, width: 1.5, points: { show: s.x.length < 50 } });
    if (s.lo && s.hi) {
      const edge = { stroke, width: 0, points: { show: false } };
      out.push({ ...edge, label: `${s.label} min` }, { ...edge, label: `${s.label} max` });
      bands.push({ series: [out.length - 1, out.length - 2], fill: stroke + "33" });
    }
  });
  return { series: out, bands };
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
  const shapeKey = `${series.map((s) => s.label + (s.lo ? "+band" : "")).join("|")}:${xMode}:${log}:${full}`;

  useEffect(() => {
    const node = holder.current!;
    const width = Math.max(300, node.clientWidth || 440);
    const lines = layout(series);
    const opts: uPlot.Options = {
      width,
      height,
      scales: { x: { time: xMode === "time" }, y: log ? { distr: 3 } : {} },
      axes: [{ label: props.xLabel ?? (xMode === "step" ? "step" : xMode === "time" ? "" : "seconds") }, {}],
      ...lines,
      legend: { show: lines.series.length > 2 },
    };
    plot.current?.destroy();
    plot.current = new uPlot(opts, data(), node);
    performance.mark("qflow:chart"); // drawn (benchmarks/ui_api.py --browser)
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
    const smoothed = (ys: (number | null)[] | undefined) => ys && smooth(ys, smoothing);
    return align(series.map((s) => ({ ...s, y: smooth(s.y, smoothing), lo: smoothed(s.lo), hi: smoothed(s.hi) })));
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
