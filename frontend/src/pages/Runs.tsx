// The runs table: TanStack Table over the server's pages (sort, filter, search and paging are
// done by the API), columns for config values, params, tags and latest metrics, a column
// chooser and pinning kept in localStorage, group counts, CSV export, live refresh and bulk
// tag / archive / delete.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  type ColumnDef,
  type ColumnPinningState,
  type VisibilityState,
  flexRender,
  getCoreRowModel,
  useReactTable,
} from "@tanstack/react-table";
import { type Any, api, fmt, post, qs, secs, when } from "../api";
import { Badge, Fail, Muted, RunLink } from "../ui";
import { RunCharts } from "./RunCharts";

type Row = Any;
type Page = {
  runs: Row[];
  has_more: boolean;
  next_offset: number | null;
  config_keys: string[];
  param_keys: string[];
  metric_keys: string[];
  tag_keys: string[];
};

const STORE = "qflow.runs.columns.v1";
const LIMIT = 50;

function loadPrefs(): { hidden: VisibilityState; pinned: ColumnPinningState } {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
    return { hidden: saved.hidden || {}, pinned: saved.pinned || { left: ["select", "id"] } };
  } catch {
    return { hidden: {}, pinned: { left: ["select", "id"] } };
  }
}

// A column per field; `sort` is the server's sort key.
function column(id: string, header: string, value: (r: Row) => unknown, opts: Partial<ColumnDef<Row>> = {}): ColumnDef<Row> {
  return {
    id,
    header,
    accessorFn: value,
    cell: (c) => fmt(c.getValue()),
    meta: { sort: id },
    ...opts,
  } as ColumnDef<Row>;
}

/** The workflow menu with run counts. The counts (a count over every run) are asked for once
 * `ready` (the first page of runs has come: at 100,000 runs they would compete with it for the
 * server), and kept here, so their arrival redraws the menu, not the table. */
function WorkflowMenu({ value, ready, onChange }: { value: string; ready: boolean; onChange: (workflow: string) => void }) {
  const [workflows, setWorkflows] = useState<Any[]>([]);
  useEffect(() => {
    if (ready) api("/api/workflows").then(setWorkflows).catch(() => {});
  }, [ready]);
  return (
    <select id="workflow" value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
      <option value="">all workflows</option>
      {workflows.map((w) => (
        <option value={w.name} key={w.name}>
          {w.name} ({w.runs})
        </option>
      ))}
    </select>
  );
}

export function RunsPage() {
  const params = new URLSearchParams(location.search);
  const [filter, setFilter] = useState(params.get("filter") || "");
  const [draft, setDraft] = useState(filter);
  const [search, setSearch] = useState(params.get("q") || "");
  const [workflow, setWorkflow] = useState(params.get("workflow") || "");
  const [sort, setSort] = useState(params.get("sort") || "created_at");
  const [order, setOrder] = useState(params.get("order") || "desc");
  const [offset, setOffset] = useState(Number(params.get("offset") || 0));
  const [page, setPage] = useState<Page | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [prefs, setPrefs] = useState(loadPrefs);
  const [chooser, setChooser] = useState(false);
  const [columnSearch, setColumnSearch] = useState("");
  const [live, setLive] = useState(false);
  const [groupBy, setGroupBy] = useState("");
  const [groups, setGroups] = useState<Any>(null);
  const [message, setMessage] = useState("");
  const [tagText, setTagText] = useState("");
  const [charts, setCharts] = useState(false);
  const tick = useRef(0);
  const [reload, setReload] = useState(0);


  const query = { filter, q: search, workflow, sort, order };
  useEffect(() => {
    const q = qs({ ...query, offset, limit: LIMIT });
    history.replaceState(null, "", "/runs?" + qs({ ...query, offset: offset || null }));
    const mine = ++tick.current;
    api<Page>("/api/runs?" + q)
      .then((p) => {
        if (mine !== tick.current) return;
        setPage(p);
        setError(null);
      })
      .catch((e) => {
        if (mine !== tick.current) return;
        setError(e);
        setPage(null); // a bad filter leaves no stale rows
      });
  }, [filter, search, workflow, sort, order, offset, reload]);

  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => setReload((n) => n + 1), 2000);
    return () => clearInterval(timer);
  }, [live]);

  useEffect(() => {
    if (!groupBy) {
      setGroups(null);
      return;
    }
    api("/api/runs/groups?" + qs({ by: groupBy, filter, q: search, workflow }))
      .then(setGroups)
      .catch((e) => setGroups({ error: String(e.message || e) }));
  }, [groupBy, filter, search, workflow, reload]);

  useEffect(() => {
    localStorage.setItem(STORE, JSON.stringify(prefs));
  }, [prefs]);

  useEffect(() => {
    if (page) performance.mark("qflow:rows"); // drawn (benchmarks/ui_api.py --browser)
  }, [page]);

  const columns = useMemo<ColumnDef<Row>[]>(() => {
    if (!page) return [];
    const cols: ColumnDef<Row>[] = [
      {
        id: "select",
        header: "",
        enableHiding: false,
        cell: (c) => (
          <input
            type="checkbox"
            aria-label="select run"
            checked={selected.has(c.row.original.id)}
            onChange={(e) => {
              const next = new Set(selected);
              if ((e.target as HTMLInputElement).checked) next.add(c.row.original.id);
              else next.delete(c.row.original.id);
              setSelected(next);
            }}
          />
        ),
      },
      column("id", "id", (r) => r.id, { cell: (c) => <RunLink id={c.row.original.id} />, enableHiding: false }),
      column("name", "name", (r) => r.name, { meta: { sort: "tags.name" } }),
      column("workflow", "workflow", (r) => r.workflow),
      column("status", "status", (r) => r.status, { cell: (c) => <Badge status={String(c.getValue())} /> }),
      column("created_at", "started", (r) => r.created_at, { cell: (c) => when(c.getValue() as number) }),
      column("duration", "duration", (r) => r.duration, { cell: (c) => secs(c.getValue() as number) }),
      column("sweep_id", "sweep", (r) => r.sweep_id),
      column("git_commit", "commit", (r) => (r.git_commit ? r.git_commit.slice(0, 10) : ""), { meta: {} }),
      column("note", "note", (r) => r.note, { meta: { sort: "tags.note" } }),
      ...page.config_keys.map((k) => column("config." + k, "config." + k, (r) => r.config[k])),
      ...page.param_keys.map((k) => column("params." + k, "params." + k, (r) => r.params[k])),
      ...page.tag_keys
        .filter((k) => k !== "name" && k !== "note")
        .map((k) => column("tags." + k, "tags." + k, (r) => r.tags[k])),
      ...page.metric_keys.map((k) =>
        column("metrics." + k, "metrics." + k, (r) => r.metrics[k], { meta: { sort: "metrics." + k, num: true } }),
      ),
    ];
    return cols;
  }, [page, selected]);

  const table = useReactTable({
    data: page?.runs ?? [],
    columns,
    getCoreRowModel: getCoreRowModel(),
    manualSorting: true,
    manualPagination: true,
    manualFiltering: true,
    getRowId: (r) => r.id,
    state: { columnVisibility: prefs.hidden, columnPinning: prefs.pinned },
    onColumnVisibilityChange: (u) =>
      setPrefs((p) => ({ ...p, hidden: typeof u === "function" ? u(p.hidden) : u })),
    onColumnPinningChange: (u) =>
      setPrefs((p) => ({ ...p, pinned: typeof u === "function" ? u(p.pinned) : u })),
  });

  const apply = () => {
    setFilter(draft);
    setOffset(0);
  };
  const clickSort = (field: string) => {
    setOrder(sort === field && order === "desc" ? "asc" : "desc");
    setSort(field);
    setOffset(0);
  };
  const bulk = async (body: Any, confirmText?: string) => {
    if (confirmText && !confirm(confirmText)) return;
    try {
      await post("/api/runs/bulk", { runs: [...selected], ...body });
      setMessage(`${selected.size} runs updated.`);
      if (body.action) setSelected(new Set());
      setReload((n) => n + 1);
    } catch (e) {
      setMessage("");
      setError(e);
    }
  };
  const addTag = () => {
    const [k, ...rest] = tagText.split("=");
    if (!k.trim()) return;
    bulk({ tags: { [k.trim()]: rest.join("=").trim() } });
  };
  const groupKeys = page ? [...page.config_keys.map((k) => "config." + k), ...page.tag_keys.map((k) => "tags." + k), ...page.param_keys.map((k) => "params." + k), "status", "workflow", "sweep_id"] : [];
  const leftPinned = table.getLeftLeafColumns().map((c) => c.id);
  const offsets: Record<string, number> = {};
  {
    let x = 0;
    for (const id of leftPinned) {
      offsets[id] = x;
      x += id === "select" ? 34 : 150;
    }
  }

  return (
    <div>
      <h1>Runs</h1>
      <div class="toolbar">
        <input
          type="text"
          id="filter"
          placeholder="metrics.accuracy > 0.9 and config.model.C < 1"
          value={draft}
          onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
          onKeyDown={(e) => e.key === "Enter" && apply()}
        />
        <button class="primary" id="apply" onClick={apply}>
          Filter
        </button>
        <input
          type="search"
          id="search"
          placeholder="search id, name, note, status…"
          value={search}
          onInput={(e) => {
            setSearch((e.target as HTMLInputElement).value);
            setOffset(0);
          }}
        />
        <WorkflowMenu
          value={workflow}
          ready={page !== null || error !== null}
          onChange={(w) => {
            setWorkflow(w);
            setOffset(0);
          }}
        />
      </div>
      <div class="toolbar">
        <button id="columns" onClick={() => setChooser(!chooser)}>
          Columns…
        </button>
        <label>
          group by{" "}
          <select id="group-by" value={groupBy} onChange={(e) => setGroupBy((e.target as HTMLSelectElement).value)}>
            <option value="">(none)</option>
            {groupKeys.map((k) => (
              <option value={k} key={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <a class="button" id="csv" href={"/api/runs.csv?" + qs(query)} download="runs.csv">
          Export CSV
        </a>
        <label>
          <input type="checkbox" id="live" checked={live} onChange={() => setLive(!live)} /> live refresh
        </label>
        <button id="refresh" onClick={() => setReload((n) => n + 1)}>
          Refresh
        </button>
        <button id="chart-view" class={charts ? "primary" : ""} onClick={() => setCharts(!charts)}>
          Charts
        </button>
        <span class="sep" />
        <button
          id="compare"
          disabled={selected.size < 2}
          onClick={() => (location.href = "/compare?" + [...selected].map((id) => "runs=" + encodeURIComponent(id)).join("&"))}
        >
          Compare selected
        </button>
        <input
          type="text"
          class="short"
          id="tag-text"
          placeholder="key=value"
          value={tagText}
          onInput={(e) => setTagText((e.target as HTMLInputElement).value)}
        />
        <button id="tag" disabled={!selected.size || !tagText.includes("=")} onClick={addTag}>
          Tag
        </button>
        <button id="archive" disabled={!selected.size} onClick={() => bulk({ action: "archive" })}>
          Archive
        </button>
        <button
          id="delete"
          disabled={!selected.size}
          onClick={() => bulk({ action: "delete" }, `Delete ${selected.size} runs? They are hidden until qflow gc removes them.`)}
        >
          Delete
        </button>
      </div>
      {message && <p class="note" id="message">{message}</p>}
      {chooser && page && (
        <div class="card chooser" id="chooser">
          <input
            type="search"
            placeholder="find a column"
            value={columnSearch}
            onInput={(e) => setColumnSearch((e.target as HTMLInputElement).value)}
          />
          <div class="chooser-list">
            {table
              .getAllLeafColumns()
              .filter((c) => c.getCanHide() && c.id.toLowerCase().includes(columnSearch.toLowerCase()))
              .map((c) => (
                <div key={c.id} class="chooser-item">
                  <label>
                    <input type="checkbox" data-column={c.id} checked={c.getIsVisible()} onChange={c.getToggleVisibilityHandler()} />{" "}
                    {c.id}
                  </label>{" "}
                  <button class="link" data-pin={c.id} onClick={() => c.pin(c.getIsPinned() ? false : "left")}>
                    {c.getIsPinned() ? "unpin" : "pin"}
                  </button>
                </div>
              ))}
          </div>
        </div>
      )}
      {groups && (
        <div class="card" id="groups">
          {groups.error ? (
            <Fail error={groups.error} />
          ) : (
            <table>
              <thead>
                <tr>
                  <th>{groups.by}</th>
                  <th>runs</th>
                </tr>
              </thead>
              <tbody>
                {groups.groups.map((g: Any) => (
                  <tr key={g.value}>
                    <td>{g.value}</td>
                    <td class="num">{g.count}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {groups.truncated && <Muted>counted over the newest {groups.runs} matching runs</Muted>}
        </div>
      )}
      {error !== null && <Fail error={error} />}
      {charts && page && (
        <RunCharts runs={selected.size ? page.runs.filter((r) => selected.has(r.id)) : page.runs} metrics={page.metric_keys} groupBy={groupBy} />
      )}
      <div id="runs" class="table-wrap">
        {page && page.runs.length === 0 && <Muted>No runs match.</Muted>}
        {page && page.runs.length > 0 && (
          <table>
            <thead>
              {table.getHeaderGroups().map((hg) => (
                <tr key={hg.id}>
                  {hg.headers.map((h) => {
                    const sortKey = (h.column.columnDef.meta as Any)?.sort as string | undefined;
                    const pinned = h.column.getIsPinned();
                    const cls = [sortKey ? "sortable" : "", sort === sortKey ? "sorted" + (order === "asc" ? " asc" : "") : "", pinned ? "pinned" : ""].join(" ");
                    return (
                      <th
                        key={h.id}
                        class={cls}
                        data-column={h.column.id}
                        style={pinned ? { left: offsets[h.column.id] + "px" } : undefined}
                        onClick={sortKey ? () => clickSort(sortKey) : undefined}
                      >
                        {flexRender(h.column.columnDef.header, h.getContext())}
                      </th>
                    );
                  })}
                </tr>
              ))}
            </thead>
            <tbody>
              {table.getRowModel().rows.map((row) => (
                <tr key={row.id} data-run={row.id}>
                  {row.getVisibleCells().map((cell) => {
                    const pinned = cell.column.getIsPinned();
                    const num = (cell.column.columnDef.meta as Any)?.num;
                    return (
                      <td
                        key={cell.id}
                        class={(num ? "num " : "") + (pinned ? "pinned" : "")}
                        style={pinned ? { left: offsets[cell.column.id] + "px" } : undefined}
                      >
                        {flexRender(cell.column.columnDef.cell, cell.getContext())}
                      </td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      {page && (
        <div class="toolbar">
          <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - LIMIT))}>
            ← Newer
          </button>
          <span class="muted">
            rows {page.runs.length ? offset + 1 : 0}–{offset + page.runs.length}
          </span>
          <button id="older" disabled={!page.has_more} onClick={() => setOffset(page.next_offset ?? 0)}>
            Older →
          </button>
          <span class="muted">{selected.size ? `${selected.size} selected` : ""}</span>
        </div>
      )}
    </div>
  );
}
