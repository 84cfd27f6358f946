// The model registry: models, a model's versions (linked to their runs), signature as a
// table, alias history, and the predict form.
import { useEffect, useState } from "preact/hooks";
import { type Any, api, post, request, when } from "../api";
import { Fail, Muted, RunLink } from "../ui";

export function ModelsPage() {
  const [models, setModels] = useState<Any[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api("/api/models").then(setModels).catch(setError);
  }, []);
  if (error) return <Fail error={error} />;
  if (!models) return <Muted>Loading…</Muted>;
  return (
    <div>
      <h1>Models</h1>
      {models.length ? (
        <table>
          <thead>
            <tr>
              <th>model</th>
              <th>latest</th>
              <th>aliases</th>
              <th>description</th>
            </tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={m.name}>
                <td>
                  <a href={"/models/" + encodeURIComponent(m.name)}>{m.name}</a>
                </td>
                <td>{m.latest_version ?? "-"}</td>
                <td>{Object.entries(m.aliases).map(([a, v]) => `${a}→${v}`).join(", ")}</td>
                <td>{m.description || ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Muted>No models registered yet: qflow models register RUN STEP --name NAME</Muted>
      )}
    </div>
  );
}

function Signature({ signature }: { signature: Any }) {
  if (!signature) return <Muted>(no signature)</Muted>;
  const columns: Any[] | undefined = signature.columns;
  if (!Array.isArray(columns)) return <pre id="signature">{JSON.stringify(signature, null, 2)}</pre>;
  return (
    <div id="signature">
      <p class="muted">input: {signature.kind}</p>
      <table class="signature">
        <thead>
          <tr>
            <th>column</th>
            <th>type</th>
            <th>dtype</th>
            <th>nullable</th>
          </tr>
        </thead>
        <tbody>
          {columns.map((c, i) => (
            <tr key={i}>
              <td>{c.name ?? ""}</td>
              <td>{c.type ?? ""}</td>
              <td>{c.dtype ?? ""}</td>
              <td>{c.nullable ? "yes" : "no"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Editable({ value, id, onSave }: { value: string; id: string; onSave: (v: string) => Promise<void> }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(value);
  if (!editing)
    return (
      <span>
        {value || <span class="muted">(none)</span>}{" "}
        <button class="link" id={"edit-" + id} onClick={() => setEditing(true)}>
          edit
        </button>
      </span>
    );
  return (
    <span>
      <input id={"input-" + id} value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />{" "}
      <button
        class="primary"
        id={"save-" + id}
        onClick={async () => {
          await onSave(text);
          setEditing(false);
        }}
      >
        Save
      </button>
    </span>
  );
}

function tagText(tags: Record<string, string> | undefined): string {
  return Object.entries(tags || {})
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

function parseTags(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const [k, ...v] = part.split("=");
    if (k.trim()) out[k.trim()] = v.join("=").trim();
  }
  return out;
}

export function ModelPage({ name }: { name: string }) {
  const [m, setM] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  const [alias, setAlias] = useState("");
  const [aliasVersion, setAliasVersion] = useState("");
  const [reload, setReload] = useState(0);
  useEffect(() => {
    api("/api/models/" + encodeURIComponent(name)).then(setM).catch(setError);
  }, [reload]);
  if (error && !m) return <Fail error={error} />;
  if (!m) return <Muted>Loading…</Muted>;
  const base = "/api/models/" + encodeURIComponent(m.name);
  const act = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
      setError(null);
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div>
      <h1>Model {m.name}</h1>
      {error !== null && <Fail error={error} />}
      <p id="model-description">
        <Editable value={m.description || ""} id="model-description" onSave={(text) => act(() => post(base + "/description", { text }))} />
      </p>
      <p>
        tags:{" "}
        <Editable value={tagText(m.tags)} id="model-tags" onSave={(text) => act(() => post(base + "/tags", { tags: parseTags(text) }))} />
      </p>
      <h2>Versions</h2>
      <table id="versions">
        <thead>
          <tr>
            {["version", "aliases", "run", "step.output", "type", "pickled", "description", "tags", "created", ""].map((h) => (
              <th key={h}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {m.versions.map((v: Any) => (
            <tr key={v.version} data-version={v.version}>
              <td>{v.version}</td>
              <td>
                {v.aliases.map((a: string) => (
                  <span key={a} class="alias">
                    {a}{" "}
                    <button class="link" title={`remove alias ${a}`} data-remove-alias={a} onClick={() => act(() => post(`${base}/aliases/${encodeURIComponent(a)}`, { version: null }))}>
                      ×
                    </button>
                  </span>
                ))}
              </td>
              <td>
                <RunLink id={v.run_id} />
              </td>
              <td>{`${v.step}.${v.output}`}</td>
              <td>{v.type_name}</td>
              <td>{v.pickled ? "yes" : "no"}</td>
              <td>
                <Editable value={v.description || ""} id={`version-${v.version}-description`} onSave={(text) => act(() => post(base + "/description", { text, version: v.version }))} />
              </td>
              <td>
                <Editable value={tagText(v.tags)} id={`version-${v.version}-tags`} onSave={(text) => act(() => post(base + "/tags", { tags: parseTags(text), version: v.version }))} />
              </td>
              <td>{when(v.created_at)}</td>
              <td>
                <a href={`/predict/${encodeURIComponent(m.name + "/" + v.version)}`}>predict</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="toolbar">
        set alias <input id="alias-name" class="short" placeholder="production" value={alias} onInput={(e) => setAlias((e.target as HTMLInputElement).value)} /> to version{" "}
        <select id="alias-version" value={aliasVersion} onChange={(e) => setAliasVersion((e.target as HTMLSelectElement).value)}>
          <option value="">…</option>
          {m.versions.map((v: Any) => (
            <option key={v.version} value={v.version}>
              {v.version}
            </option>
          ))}
        </select>
        <button
          id="set-alias"
          disabled={!alias.trim() || !aliasVersion}
          onClick={() => act(() => post(`${base}/aliases/${encodeURIComponent(alias.trim())}`, { version: Number(aliasVersion) }))}
        >
          Set
        </button>
      </div>
      <h2>Signature (latest)</h2>
      <Signature signature={m.versions[0]?.signature} />
      <h2>Alias history</h2>
      <table id="alias-history">
        <tbody>
          {m.alias_history.map((c: Any, i: number) => (
            <tr key={i}>
              <td>{c.alias}</td>
              <td>{`${c.previous_version ?? "-"} → ${c.version ?? "removed"}`}</td>
              <td>{c.who || ""}</td>
              <td>{when(c.changed_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function PredictPage({ modelRef }: { modelRef: string }) {
  const [file, setFile] = useState<File | null>(null);
  const [result, setResult] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [version, setVersion] = useState<Any>(null);
  useEffect(() => {
    const match = /^([^@/]+)(?:\/(\d+)|@(.+))?$/.exec(modelRef);
    if (!match) return;
    api("/api/models/" + encodeURIComponent(match[1]))
      .then((m) => {
        const v = match[2]
          ? m.versions.find((x: Any) => x.version === Number(match[2]))
          : match[3]
            ? m.versions.find((x: Any) => x.aliases.includes(match[3]))
            : m.versions[0];
        setVersion(v ?? null);
      })
      .catch(() => {});
  }, []);
  const go = async () => {
    if (!file) return;
    setBusy(true);
    setError(null);
    try {
      const response = await request(`/api/models/${encodeURIComponent(modelRef)}/predict`, {
        method: "POST",
        body: file,
        headers: { "Content-Type": "text/csv" },
      });
      const blob = await response.blob();
      const lines = (await blob.text()).trim().split("\n");
      setResult({ url: URL.createObjectURL(blob), lines });
    } catch (e) {
      setError(e);
    }
    setBusy(false);
  };
  return (
    <div>
      <h1>Predict with {modelRef}</h1>
      <Muted>Upload a CSV with the model's input columns; it is parsed as CSV only.</Muted>
      {version?.pickled && (
        <div class="warning" id="pickle-warning">
          This model is stored as a pickle: loading it runs code from its file. Predict only with
          models from runs you trust.
        </div>
      )}
      <div class="toolbar">
        <input type="file" id="csv" accept=".csv,text/csv" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
        <button class="primary" id="predict" onClick={go}>
          Predict
        </button>
      </div>
      <div id="result">
        {busy && <Muted>Predicting…</Muted>}
        {error !== null && <Fail error={error} />}
        {result && (
          <div>
            <a href={result.url} download={modelRef.replace(/[^\w.-]/g, "_") + "-predictions.csv"} id="download">
              Download predictions.csv
            </a>
            <pre>{result.lines.slice(0, 21).join("\n")}</pre>
            <Muted>{result.lines.length - 1} rows</Muted>
          </div>
        )}
      </div>
    </div>
  );
}
