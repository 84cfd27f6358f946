// QFlow dashboard: draws each page from the JSON API. Plain DOM, no build step; all data is
// inserted with textContent (never innerHTML), so run names or logs cannot inject markup.
"use strict";

const main = document.getElementById("main");
const POLL_MS = 2000;

function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = cookie("qflow_csrf");
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (response.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("not signed in");
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return options.raw ? response : response.json();
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) { main.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined)); }
function fail(error) { return el("div", { class: "error" }, String(error.message || error)); }
function when(t) { return t ? new Date(t * 1000).toLocaleString() : "-"; }
function secs(s) {
  if (s === null || s === undefined) return "-";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  return (s / 60).toFixed(1) + " min";
}
function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
function badge(status) { return el("span", { class: "status " + status }, status); }
function runLink(id) { return el("a", { href: "/runs/" + encodeURIComponent(id) }, id); }
function kvTable(obj) {
  const keys = Object.keys(obj || {});
  if (!keys.length) return el("p", { class: "muted" }, "(none)");
  return el("table", { class: "kv" }, keys.map((k) => el("tr", {}, el("td", {}, k), el("td", {}, fmt(obj[k])))));
}
function plot(node, traces, layout) {
  if (!window.Plotly) { node.append(el("p", { class: "muted" }, "Charts need the plotly package on the server.")); return; }
  window.Plotly.react(node, traces, Object.assign({ margin: { t: 30, r: 10, b: 40, l: 50 }, height: 300 }, layout), { displaylogo: false, responsive: true });
}

// -- runs table ------------------------------------------------------------------------------

async function runsPage() {
  const params = new URLSearchParams(location.search);
  const state = {
    filter: params.get("filter") || "", sort: params.get("sort") || "created_at",
    order: params.get("order") || "desc", offset: Number(params.get("offset") || 0), limit: 50,
    workflow: params.get("workflow") || "",
  };
  const input = el("input", { type: "text", id: "filter", placeholder: "metrics.accuracy > 0.9 and status = 'succeeded'", value: state.filter });
  const workflows = el("select", { id: "workflow" }, el("option", { value: "" }, "all workflows"));
  const selected = new Set();
  const compare = el("button", { id: "compare", disabled: true, onclick: () => {
    location.href = "/compare?" + [...selected].map((id) => "runs=" + encodeURIComponent(id)).join("&");
  } }, "Compare selected");
  const table = el("div", { id: "runs" });
  const pager = el("div", { class: "toolbar" });
  const message = el("div");
  show(el("h1", {}, "Runs"),
    el("div", { class: "toolbar" }, input, workflows,
      el("button", { class: "primary", id: "apply", onclick: () => { state.filter = input.value; state.offset = 0; load(); } }, "Filter"), compare),
    message, table, pager);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") { state.filter = input.value; state.offset = 0; load(); } });
  workflows.addEventListener("change", () => { state.workflow = workflows.value; state.offset = 0; load(); });
  api("/api/workflows").then((list) => {
    for (const w of list) workflows.append(el("option", { value: w.name, selected: w.name === state.workflow }, `${w.name} (${w.runs})`));
  }).catch(() => {});

  async function load() {
    const q = new URLSearchParams({ sort: state.sort, order: state.order, offset: state.offset, limit: state.limit });
    if (state.filter) q.set("filter", state.filter);
    if (state.workflow) q.set("workflow", state.workflow);
    history.replaceState(null, "", "/runs?" + q.toString());
    message.replaceChildren();
    let page;
    try { page = await api("/api/runs?" + q.toString()); } catch (error) { message.replaceChildren(fail(error)); return; }
    const head = (label, field, numeric) => el("th", {
      class: "sortable" + (state.sort === field ? " sorted" + (state.order === "asc" ? " asc" : "") : ""),
      onclick: () => { state.order = state.sort === field && state.order === "desc" ? "asc" : "desc"; state.sort = field; state.offset = 0; load(); },
    }, label);
    const columns = [["id", "id"], ["workflow", "workflow"], ["status", "status"], ["started", "created_at"], ["duration", "duration"]];
    const header = el("tr", {}, el("th", {}, ""), columns.map(([l, f]) => head(l, f)),
      page.param_keys.map((k) => head("params." + k, "params." + k)),
      page.metric_keys.map((k) => head("metrics." + k, "metrics." + k)));
    const rows = page.runs.map((r) => el("tr", { "data-run": r.id },
      el("td", {}, el("input", { type: "checkbox", checked: selected.has(r.id), onchange: (e) => {
        if (e.target.checked) selected.add(r.id); else selected.delete(r.id);
        compare.disabled = selected.size < 2;
      } })),
      el("td", {}, runLink(r.id)), el("td", {}, r.workflow), el("td", {}, badge(r.status)),
      el("td", {}, when(r.created_at)), el("td", { class: "num" }, secs(r.duration)),
      page.param_keys.map((k) => el("td", {}, fmt(r.params[k]))),
      page.metric_keys.map((k) => el("td", { class: "num" }, fmt(r.metrics[k])))));
    table.replaceChildren(page.runs.length ? el("table", {}, el("thead", {}, header), el("tbody", {}, rows)) : el("p", { class: "muted" }, "No runs match."));
    pager.replaceChildren(
      el("button", { disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); load(); } }, "← Newer"),
      el("span", { class: "muted" }, `rows ${page.runs.length ? state.offset + 1 : 0}–${state.offset + page.runs.length}`),
      el("button", { disabled: !page.has_more, onclick: () => { state.offset = page.next_offset; load(); } }, "Older →"));
  }
  load();
}

// -- run detail ------------------------------------------------------------------------------

function timeline(run) {
  const steps = run.steps.filter((s) => s.start !== null);
  const end = Math.max(1e-3, ...steps.map((s) => s.start + (s.duration || (Date.now() / 1000 - s.started_at))));
  return el("div", { class: "timeline", id: "timeline" }, run.steps.map((s) => el("div", { class: "tl-row" },
    el("div", { class: "tl-name", title: s.name }, s.name),
    el("div", { class: "tl-track" }, s.start === null ? null : el("div", {
      class: "tl-bar " + s.status, title: `${s.name}: ${s.status}, ${secs(s.duration)}`,
      style: `left:${(100 * s.start / end).toFixed(2)}%;width:${(100 * (s.duration || 0) / end).toFixed(2)}%`,
    })),
    el("div", { style: "width:170px;text-align:right" }, badge(s.status), " ", secs(s.duration)))));
}

function artifactList(run) {
  if (!run.artifacts.length) return el("p", { class: "muted" }, "(none)");
  const area = el("div", { id: "preview" });
  const rows = run.artifacts.map((a) => el("tr", {},
    el("td", {}, a.name), el("td", {}, a.source), el("td", {}, a.type), el("td", { class: "num" }, a.size),
    el("td", {}, a.pickled ? "pickle" : a.serializer),
    el("td", {}, el("button", { onclick: () => previewArtifact(run.id, a, area) }, "Preview"),
      " ", el("a", { href: `/api/runs/${run.id}/artifacts/${a.key}/raw` }, "download"),
      a.source === "output" ? [" ", el("a", { href: `/lineage/${run.id}?target=${encodeURIComponent(a.name)}` }, "lineage")] : null)));
  return el("div", {}, el("table", {}, el("tr", {}, ["name", "source", "type", "bytes", "format", ""].map((h) => el("th", {}, h))), rows), area);
}

async function previewArtifact(runId, artifact, area) {
  area.replaceChildren(el("p", { class: "muted" }, "Loading preview…"));
  try {
    const p = await api(`/api/runs/${runId}/artifacts/${artifact.key}/preview`);
    const title = el("h2", {}, artifact.name);
    if (p.kind === "image") area.replaceChildren(title, el("img", { src: `/api/runs/${runId}/artifacts/${artifact.key}/raw`, alt: artifact.name, style: "max-width:100%" }));
    else if (p.kind === "table") area.replaceChildren(title, el("table", { class: "preview-table" },
      el("tr", {}, p.columns.map((c) => el("th", {}, c))), p.rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, fmt(v)))))),
      el("p", { class: "muted" }, p.total_rows !== null ? `${p.rows.length} of ${p.total_rows} rows` : `first ${p.rows.length} rows`));
    else if (p.kind === "json") area.replaceChildren(title, el("pre", {}, JSON.stringify(p.value, null, 2)));
    else if (p.kind === "text") area.replaceChildren(title, el("pre", {}, p.text), ...(p.truncated ? [el("p", { class: "muted" }, "(truncated)")] : []));
    else area.replaceChildren(title, el("p", { class: "muted" }, "No preview: " + p.reason));
  } catch (error) { area.replaceChildren(fail(error)); }
}

function metricCharts(run, container) {
  const charts = {};
  for (const m of run.metric_keys) {
    const node = el("div", { class: "chart", "data-metric": m.key });
    container.append(el("div", { class: "card" }, el("strong", {}, m.key), " ", el("span", { class: "muted" }, `${m.points} points`), node));
    charts[m.key] = { node, x: [], y: [], last: 0 };
  }
  async function refresh(full) {
    for (const [key, c] of Object.entries(charts)) {
      const q = new URLSearchParams({ key, after: full ? 0 : c.last });
      const h = await api(`/api/runs/${run.id}/history?` + q.toString());
      if (full || h.downsampled) { c.x = h.x; c.y = h.y; } else { c.x = c.x.concat(h.x); c.y = c.y.concat(h.y); }
      c.last = h.last_id;
      plot(c.node, [{ x: c.x, y: c.y, mode: c.x.length > 1 ? "lines" : "markers", name: key }], { title: { text: h.downsampled ? `${h.total_points} points, downsampled` : "" } });
    }
  }
  return refresh;
}

async function runPage(runId) {
  let run;
  try { run = await api("/api/runs/" + encodeURIComponent(runId)); } catch (error) { show(fail(error)); return; }
  const status = el("span", { id: "run-status" }, badge(run.status));
  const steps = el("div", {}, timeline(run));
  const charts = el("div", { class: "grid", id: "charts" });
  const logs = el("div", { id: "logs" });
  const graph = el("div", { class: "graph" }, el("img", { id: "graph", src: `/api/runs/${run.id}/graph.svg`, alt: "workflow graph" }));
  show(
    el("h1", {}, run.workflow, " ", el("span", { class: "muted" }, run.id), " ", status),
    el("p", {}, `started ${when(run.created_at)} · ${secs(run.duration)} · ${run.user || ""}@${run.host || ""}`,
      " · ", el("a", { href: "/compare?runs=" + encodeURIComponent(run.id) }, "compare…")),
    run.error ? el("div", { class: "error" }, run.error) : null,
    el("h2", {}, "Steps"), steps,
    el("h2", {}, "Metrics"), run.metric_keys.length ? charts : el("p", { class: "muted" }, "(none)"),
    el("h2", {}, "Graph"), graph,
    el("h2", {}, "Parameters"), kvTable(run.params),
    el("h2", {}, "Tags"), kvTable(run.tags),
    el("h2", {}, "Config"), el("pre", {}, JSON.stringify(run.config, null, 2)),
    el("h2", {}, "Artifacts"), artifactList(run),
    el("h2", {}, "Logs"), logs);
  const refresh = metricCharts(run, charts);
  await refresh(true).catch((error) => charts.append(fail(error)));
  const drawLogs = async () => {
    const entries = await api(`/api/runs/${run.id}/logs`);
    logs.replaceChildren(...entries.filter((s) => s.stdout || s.stderr || s.traceback).map((s) => el("div", {},
      el("strong", {}, s.name), " ", badge(s.status),
      s.stdout ? el("pre", { class: "stdout" }, s.stdout) : null, s.stderr ? el("pre", {}, s.stderr) : null,
      s.traceback ? el("pre", { class: "error" }, s.traceback) : null)));
    if (!logs.children.length) logs.append(el("p", { class: "muted" }, "(no output)"));
  };
  drawLogs().catch(() => {});
  // Live: poll while the run is going; charts fetch only new points.
  let current = run;
  while (current.status === "running") {
    await new Promise((r) => setTimeout(r, POLL_MS));
    try {
      current = await api("/api/runs/" + encodeURIComponent(run.id));
      status.replaceChildren(badge(current.status));
      steps.replaceChildren(timeline(current));
      if (current.metric_keys.length !== Object.keys(charts).length) { runPage(runId); return; }
      await refresh(false);
      document.getElementById("graph").src = `/api/runs/${run.id}/graph.svg?t=${Date.now()}`;
    } catch (error) { /* keep polling */ }
  }
  if (current !== run) { await refresh(true); drawLogs().catch(() => {}); }
}

// -- compare -----------------------------------------------------------------------------------

async function comparePage() {
  const ids = new URLSearchParams(location.search).getAll("runs");
  if (!ids.length) { show(el("h1", {}, "Compare"), el("p", { class: "muted" }, "Pick runs in the runs table.")); return; }
  let data;
  try { data = await api("/api/compare?" + ids.map((i) => "runs=" + encodeURIComponent(i)).join("&")); } catch (error) { show(fail(error)); return; }
  const header = el("tr", {}, el("th", {}, "param"), data.runs.map((r) => el("th", {}, runLink(r.id))));
  const params = data.param_keys.map((k) => el("tr", { class: data.differing_params.includes(k) ? "diff" : "" },
    el("td", {}, k), data.runs.map((r) => el("td", {}, fmt(r.params[k])))));
  const metrics = data.metric_keys.map((k) => el("tr", {}, el("td", {}, k), data.runs.map((r) => el("td", { class: "num" }, fmt(r.metrics[k])))));
  const overlays = el("div", { class: "grid" });
  const parcoords = el("div", { class: "chart", id: "parcoords" });
  show(el("h1", {}, `Compare ${data.runs.length} runs`),
    el("h2", {}, "Parameters (differences highlighted)"), el("table", {}, header, params),
    el("h2", {}, "Metrics (latest)"), el("table", {}, el("tr", {}, el("th", {}, "metric"), data.runs.map((r) => el("th", {}, runLink(r.id)))), metrics),
    el("h2", {}, "Parallel coordinates"), parcoords,
    el("h2", {}, "Metric histories"), overlays);
  const dims = [];
  for (const k of data.param_keys) {
    const values = data.runs.map((r) => r.params[k]);
    if (values.every((v) => typeof v === "number")) dims.push({ label: "params." + k, values });
  }
  for (const k of data.metric_keys) dims.push({ label: k, values: data.runs.map((r) => r.metrics[k] ?? null) });
  if (dims.length) parallelCoordinates(parcoords, dims, data.runs.map((r) => r.id));
  for (const key of data.metric_keys) {
    const node = el("div", { class: "chart", "data-metric": key });
    overlays.append(el("div", { class: "card" }, el("strong", {}, key), node));
    const traces = await Promise.all(data.runs.map(async (r) => {
      const h = await api(`/api/runs/${r.id}/history?key=${encodeURIComponent(key)}`);
      return { x: h.x, y: h.y, name: r.id.slice(-8), mode: h.x.length > 1 ? "lines" : "markers" };
    }));
    plot(node, traces, {});
  }
}

// Parallel coordinates in plain SVG (Plotly's parcoords needs WebGL, which headless and
// remote-desktop browsers often lack): one vertical axis per dimension, one line per run.
function parallelCoordinates(node, dims, ids) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const width = Math.max(400, node.clientWidth || 900), height = 300, pad = 40;
  const root = svg("svg", { width, height, class: "parcoords" });
  const step = dims.length > 1 ? (width - 2 * pad) / (dims.length - 1) : 0;
  const colours = ["#2f6fde", "#e8590c", "#2b8a3e", "#c2255c", "#5f3dc4", "#0b7285", "#e67700"];
  const scale = dims.map((d) => {
    const nums = d.values.filter((v) => typeof v === "number");
    const lo = Math.min(...nums), hi = Math.max(...nums);
    return (v) => typeof v !== "number" ? null : height - pad - (hi === lo ? 0.5 : (v - lo) / (hi - lo)) * (height - 2 * pad);
  });
  dims.forEach((d, i) => {
    const x = pad + i * step;
    root.append(svg("line", { x1: x, x2: x, y1: pad, y2: height - pad, stroke: "#888" }));
    root.append(svg("text", { x, y: pad - 12, "text-anchor": "middle", "font-size": 12 }, d.label));
    const nums = d.values.filter((v) => typeof v === "number");
    if (nums.length) {
      root.append(svg("text", { x: x + 4, y: pad + 4, "font-size": 10, fill: "#666" }, fmt(Math.max(...nums))));
      root.append(svg("text", { x: x + 4, y: height - pad, "font-size": 10, fill: "#666" }, fmt(Math.min(...nums))));
    }
  });
  ids.forEach((id, r) => {
    const points = dims.map((d, i) => [pad + i * step, scale[i](d.values[r])]).filter((p) => p[1] !== null);
    const line = svg("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: colours[r % colours.length], "stroke-width": 2 });
    line.append(svg("title", {}, id));
    root.append(line);
  });
  node.replaceChildren(root);
}

// -- models and predictions ------------------------------------------------------------------

async function modelsPage() {
  let models;
  try { models = await api("/api/models"); } catch (error) { show(fail(error)); return; }
  show(el("h1", {}, "Models"), models.length ? el("table", {},
    el("tr", {}, ["model", "latest", "aliases", "description"].map((h) => el("th", {}, h))),
    models.map((m) => el("tr", {}, el("td", {}, el("a", { href: "/models/" + encodeURIComponent(m.name) }, m.name)),
      el("td", {}, m.latest_version ?? "-"), el("td", {}, Object.entries(m.aliases).map(([a, v]) => `${a}→${v}`).join(", ")),
      el("td", {}, m.description || "")))) : el("p", { class: "muted" }, "No models registered yet: qflow models register RUN STEP --name NAME"));
}

async function modelPage(name) {
  let m;
  try { m = await api("/api/models/" + encodeURIComponent(name)); } catch (error) { show(fail(error)); return; }
  show(el("h1", {}, "Model ", m.name), m.description ? el("p", {}, m.description) : null,
    el("h2", {}, "Versions"), el("table", {},
      el("tr", {}, ["version", "aliases", "run", "step.output", "type", "pickled", "created", ""].map((h) => el("th", {}, h))),
      m.versions.map((v) => el("tr", {}, el("td", {}, v.version), el("td", {}, v.aliases.join(", ")),
        el("td", {}, runLink(v.run_id)), el("td", {}, `${v.step}.${v.output}`), el("td", {}, v.type_name),
        el("td", {}, v.pickled ? "yes" : "no"), el("td", {}, when(v.created_at)),
        el("td", {}, el("a", { href: `/predict/${encodeURIComponent(m.name + "/" + v.version)}` }, "predict"))))),
    el("h2", {}, "Signature (latest)"), el("pre", {}, JSON.stringify(m.versions[0] ? m.versions[0].signature : null, null, 2)),
    el("h2", {}, "Alias history"), el("table", {}, m.alias_history.map((c) => el("tr", {},
      el("td", {}, c.alias), el("td", {}, `${c.previous_version ?? "-"} → ${c.version ?? "removed"}`), el("td", {}, c.who || ""), el("td", {}, when(c.changed_at))))));
}

function predictPage(ref) {
  const file = el("input", { type: "file", id: "csv", accept: ".csv,text/csv" });
  const result = el("div", { id: "result" });
  const go = el("button", { class: "primary", id: "predict", onclick: async () => {
    if (!file.files.length) return;
    result.replaceChildren(el("p", { class: "muted" }, "Predicting…"));
    try {
      const response = await api(`/api/models/${encodeURIComponent(ref)}/predict`, { method: "POST", body: file.files[0], headers: { "Content-Type": "text/csv" }, raw: true });
      const blob = await response.blob();
      const text = await blob.text();
      const lines = text.trim().split("\n");
      result.replaceChildren(el("a", { href: URL.createObjectURL(blob), download: ref.replace(/[^\w.-]/g, "_") + "-predictions.csv", id: "download" }, "Download predictions.csv"),
        el("pre", {}, lines.slice(0, 21).join("\n")), el("p", { class: "muted" }, `${lines.length - 1} rows`));
    } catch (error) { result.replaceChildren(fail(error)); }
  } }, "Predict");
  show(el("h1", {}, "Predict with ", ref), el("p", { class: "muted" }, "Upload a CSV with the model's input columns; it is parsed as CSV only."),
    el("div", { class: "toolbar" }, file, go), result);
}

// -- lineage -----------------------------------------------------------------------------------

function lineageTree(node) {
  if (node.produced_by) {
    const s = node.produced_by;
    return el("li", {}, el("strong", {}, node.name), " ", el("span", { class: "muted" }, (node.key || "").slice(0, 10)),
      el("ul", { class: "tree" }, el("li", {}, "← step ", el("strong", {}, s.step), " ", badge(s.status),
        Object.keys(s.params).length ? " " + JSON.stringify(s.params) : "",
        el("ul", { class: "tree" }, s.data_files.map((f) => el("li", {}, "data file ", f.path, " ", el("span", { class: "muted" }, f.sha256.slice(0, 10)))),
          s.inputs.map(lineageTree)))));
  }
  if (node.used_by) {
    return el("li", {}, `→ run ${node.run_id} step `, el("strong", {}, node.step), ` (as ${node.input})`,
      el("ul", { class: "tree" }, (node.outputs || []).map((o) => el("li", {}, o.name, el("ul", { class: "tree" }, o.used_by.map(lineageTree))))));
  }
  return el("li", {}, node.name, " ", el("span", { class: "muted" }, (node.key || "").slice(0, 10)));
}

async function lineagePage(runId) {
  const q = new URLSearchParams(location.search);
  const target = q.get("target") || "";
  const forward = q.get("forward") === "true";
  let data;
  try { data = await api(`/api/lineage/${encodeURIComponent(runId)}?target=${encodeURIComponent(target)}&forward=${forward}`); } catch (error) { show(fail(error)); return; }
  const tree = forward
    ? el("ul", { class: "tree" }, data.used_by.map(lineageTree))
    : el("ul", { class: "tree" }, lineageTree(data.artifact));
  show(el("h1", {}, forward ? "Used by: " : "Lineage of ", target, " ", el("span", { class: "muted" }, runId)),
    el("p", {}, el("a", { href: `/lineage/${runId}?target=${encodeURIComponent(target)}&forward=${!forward}` }, forward ? "where it came from" : "who used it")),
    tree, el("h2", {}, "Mermaid"), el("pre", {}, data.mermaid));
}

// -- launch ------------------------------------------------------------------------------------

async function launchList() {
  let names;
  try { names = await api("/api/launch/workflows"); } catch (error) { show(el("h1", {}, "Launch"), fail(error)); return; }
  show(el("h1", {}, "Launch a workflow"), names.length
    ? el("ul", {}, names.map((n) => el("li", {}, el("a", { href: "/launch/" + encodeURIComponent(n) }, n))))
    : el("p", { class: "muted" }, "This project declares no workflows ([tool.qflow] workflow-modules)."));
}

async function launchPage(workflow) {
  let spec;
  try { spec = await api(`/api/launch/workflows/${encodeURIComponent(workflow)}/config`); } catch (error) { show(fail(error)); return; }
  const inputs = spec.fields.map((f) => ({ f, input: el("input", { type: "text", name: f.key, value: f.type === "str" ? f.value : JSON.stringify(f.value), "data-type": f.type }) }));
  const progress = el("div", { id: "progress" });
  const form = el("form", { class: "launch", onsubmit: async (e) => {
    e.preventDefault();
    const overrides = [];
    for (const { f, input } of inputs) {
      const original = f.type === "str" ? f.value : JSON.stringify(f.value);
      if (input.value !== original) overrides.push(`${f.key}=${input.value}`);
    }
    progress.replaceChildren(el("p", { class: "muted" }, "Starting…"));
    try {
      const launch = await api("/api/launch", { method: "POST", body: JSON.stringify({ workflow, overrides }), headers: { "Content-Type": "application/json" } });
      follow(launch.id, progress);
    } catch (error) { progress.replaceChildren(fail(error)); }
  } }, inputs.map(({ f, input }) => el("label", {}, el("span", { class: "key" }, f.key), input, " ", el("span", { class: "muted" }, f.type))),
    el("button", { type: "submit", class: "primary", id: "launch" }, "Launch"));
  show(el("h1", {}, "Launch ", workflow), spec.fields.length ? null : el("p", { class: "muted" }, "This workflow has no config."), form, progress);
}

async function follow(launchId, progress) {
  for (;;) {
    let state;
    try { state = await api("/api/launch/" + launchId); } catch (error) { progress.replaceChildren(fail(error)); return; }
    const parts = [el("p", {}, "Launch ", launchId, ": ", badge(state.state), state.run_id ? [" run ", runLink(state.run_id)] : null)];
    if (state.run_id) {
      try {
        const run = await api("/api/runs/" + state.run_id);
        parts.push(el("p", {}, "run status: ", el("span", { id: "launched-status" }, badge(run.status))), timeline(run));
      } catch (error) { /* not recorded yet */ }
    }
    parts.push(el("pre", {}, state.output || ""));
    progress.replaceChildren(...parts);
    if (state.state !== "running") return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// -- routing -----------------------------------------------------------------------------------

function route() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const [page, arg] = parts;
  if (!page || page === "runs") return arg ? runPage(arg) : runsPage();
  if (page === "compare") return comparePage();
  if (page === "models") return arg ? modelPage(arg) : modelsPage();
  if (page === "predict") return predictPage(parts.slice(1).join("/"));
  if (page === "lineage") return lineagePage(arg);
  if (page === "launch") return arg ? launchPage(arg) : launchList();
  show(el("p", {}, "Unknown page."));
}

route();
