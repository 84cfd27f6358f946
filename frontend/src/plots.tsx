// Parallel coordinates and a scatter of any two columns, over runs (one value per run and
// column). Drawn with uPlot where it fits (the scatter); the parallel-coordinates axes are a
// small SVG, since uPlot has no such chart and Plotly's parcoords needs WebGL, which headless
// and remote-desktop browsers often lack.
import { useState } from "preact/hooks";
import { fmt } from "./api";
import { COLOURS } from "./chart";
import uPlot from "uplot";
import { useEffect, useRef } from "preact/hooks";

type Columns = Record<string, (number | null)[]>;

function Parcoords({ columns, labels }: { columns: Columns; labels: string[] }) {
  const dims = Object.entries(columns);
  const width = 960;
  const height = 300;
  const pad = 50;
  const step = dims.length > 1 ? (width - 2 * pad) / (dims.length - 1) : 0;
  const scales = dims.map(([, values]) => {
    const nums = values.filter((v): v is number => typeof v === "number");
    const lo = Math.min(...nums);
    const hi = Math.max(...nums);
    return { lo, hi, y: (v: number | null) => (v === null ? null : height - pad - (hi === lo ? 0.5 : (v - lo) / (hi - lo)) * (height - 2 * pad)) };
  });
  return (
    <svg class="parcoords" width={width} height={height} viewBox={`0 0 ${width} ${height}`}>
      {dims.map(([name], i) => (
        <g key={name}>
          <line x1={pad + i * step} x2={pad + i * step} y1={pad} y2={height - pad} stroke="#888" />
          <text x={pad + i * step} y={pad - 14} text-anchor="middle" font-size="11">
            {name}
          </text>
          <text x={pad + i * step + 4} y={pad + 4} font-size="10" fill="#666">
            {fmt(scales[i].hi)}
          </text>
          <text x={pad + i * step + 4} y={height - pad} font-size="10" fill="#666">
            {fmt(scales[i].lo)}
          </text>
        </g>
      ))}
      {labels.map((label, r) => {
        const points = dims
          .map(([, values], i) => [pad + i * step, scales[i].y(values[r])])
          .filter((p) => p[1] !== null)
          .map((p) => p.join(","))
          .join(" ");
        return (
          <polyline key={r} points={points} fill="none" stroke={COLOURS[r % COLOURS.length]} stroke-width="2">
            <title>{label}</title>
          </polyline>
        );
      })}
    </svg>
  );
}

function Scatter({ columns, labels }: { columns: Columns; labels: string[] }) {
  const names = Object.keys(columns);
  const [x, setX] = useState(names[0]);
  const [y, setY] = useState(names[Math.min(1, names.length - 1)]);
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const pts = labels.map((_, i) => [columns[x][i], columns[y][i]]).filter((p) => p[0] !== null && p[1] !== null).sort((a, b) => a[0]! - b[0]!);
    const plot = new uPlot(
      {
        width: 520,
        height: 320,
        scales: { x: { time: false } },
        axes: [{ label: x }, { label: y }],
        series: [{}, { label: y, stroke: COLOURS[0], width: 0, points: { show: true, size: 9, fill: COLOURS[0] } }],
        legend: { show: false },
      },
      [pts.map((p) => p[0]!), pts.map((p) => p[1]!)],
      holder.current!,
    );
    return () => plot.destroy();
  }, [x, y]);
  return (
    <div class="card">
      <div class="toolbar">
        x{" "}
        <select id="scatter-x" value={x} onChange={(e) => setX((e.target as HTMLSelectElement).value)}>
          {names.map((n) => <option key={n}>{n}</option>)}
        </select>
        y{" "}
        <select id="scatter-y" value={y} onChange={(e) => setY((e.target as HTMLSelectElement).value)}>
          {names.map((n) => <option key={n}>{n}</option>)}
        </select>
      </div>
      <div ref={holder} id="scatter" />
    </div>
  );
}

export default function Plots({ columns, labels }: { columns: Columns; labels: string[] }) {
  if (!Object.keys(columns).length) return null;
  return (
    <div>
      <h2>Parallel coordinates</h2>
      <div id="parcoords" class="card">
        <Parcoords columns={columns} labels={labels} />
      </div>
      <h2>Scatter</h2>
      <Scatter columns={columns} labels={labels} />
    </div>
  );
}
