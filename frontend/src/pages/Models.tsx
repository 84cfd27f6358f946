// The model registry: models, a model's versions (linked to their runs), signature as a
// table, alias history, and the predict form.
import { useEffect, useState } from "preact/hooks";
import { type Any, api, request, when } from "../api";
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
  const part = (title: string, cols: Any) => {
    const list: Any[] = Array.isArray(cols) ? cols : cols && typeof cols === "object" ? Object.entries(cols).map(([name, type]) => ({ name, type })) : [];
    return (
      <div>
        <h3>{title}</h3>
        {list.length ? (
          <table class="signature">
            <thead>
              <tr>
                <th>column</th>
                <th>type</th>
              </tr>
            </thead>
            <tbody>
              {list.map((c, i) => (
                <tr key={i}>
                  <td>{c.name ?? ""}</td>
                  <td>{typeof c.type === "string" ? c.type : JSON.stringify(c.type ?? c.dtype ?? c)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <pre>{JSON.stringify(cols, null, 2)}</pre>
        )}
      </div>
    );
  };
  return (
    <div id="signature" class="grid">
      {part("inputs", signature.inputs)}
      {part("outputs", signature.outputs)}
    </div>
  );
}

export function ModelPage({ name }: { name: string }) {
  const [m, setM] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api("/api/models/" + encodeURIComponent(name)).then(setM).catch(setError);
  }, []);
  if (error) return <Fail error={error} />;
  if (!m) return <Muted>Loading…</Muted>;
  return (
    <div>
      <h1>Model {m.name}</h1>
      {m.description && <p>{m.description}</p>}
      <h2>Versions</h2>
      <table id="versions">
        <thead>
          <tr>
            {["version", "aliases", "run", "step.output", "type", "pickled", "description", "created", ""].map((h) => (
              <th key={h}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {m.versions.map((v: Any) => (
            <tr key={v.version}>
              <td>{v.version}</td>
              <td>{v.aliases.join(", ")}</td>
              <td>
                <RunLink id={v.run_id} />
              </td>
              <td>{`${v.step}.${v.output}`}</td>
              <td>{v.type_name}</td>
              <td>{v.pickled ? "yes" : "no"}</td>
              <td>{v.description || ""}</td>
              <td>{when(v.created_at)}</td>
              <td>
                <a href={`/predict/${encodeURIComponent(m.name + "/" + v.version)}`}>predict</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Signature (latest)</h2>
      <Signature signature={m.versions[0]?.signature} />
      <h2>Alias history</h2>
      <table>
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
