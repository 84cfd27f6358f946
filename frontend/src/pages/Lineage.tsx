// Lineage of a step output: where it came from (backward) or which later steps and runs
// read it (forward), drawn as trees.
import { useEffect, useState } from "preact/hooks";
import { type Any, api } from "../api";
import { Badge, Fail, Muted, RunLink } from "../ui";

function Back({ node }: { node: Any }): Any {
  if (node.produced_by) {
    const s = node.produced_by;
    return (
      <li>
        <strong>{node.name}</strong> <span class="muted">{(node.key || "").slice(0, 10)}</span>
        <ul class="tree">
          <li>
            ← step <strong>{s.step}</strong> <Badge status={s.status} />
            {Object.keys(s.params || {}).length ? " " + JSON.stringify(s.params) : ""}
            <ul class="tree">
              {(s.data_files || []).map((f: Any) => (
                <li key={f.path}>
                  data file {f.path} <span class="muted">{f.sha256.slice(0, 10)}</span>
                </li>
              ))}
              {(s.inputs || []).map((i: Any, n: number) => (
                <Back node={i} key={n} />
              ))}
            </ul>
          </li>
        </ul>
      </li>
    );
  }
  return (
    <li>
      {node.name} <span class="muted">{(node.key || "").slice(0, 10)}</span>
    </li>
  );
}

function Forward({ node }: { node: Any }): Any {
  return (
    <li>
      → run <RunLink id={node.run_id} /> step <strong>{node.step}</strong> {node.input ? `(as ${node.input})` : ""}
      {node.outputs && node.outputs.length > 0 && (
        <ul class="tree">
          {node.outputs.map((o: Any, i: number) => (
            <li key={i}>
              {o.name}
              <ul class="tree">
                {(o.used_by || []).map((u: Any, j: number) => (
                  <Forward node={u} key={j} />
                ))}
              </ul>
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}

export function LineagePage({ runId }: { runId: string }) {
  const q = new URLSearchParams(location.search);
  const forward = q.get("forward") === "true";
  const [target, setTarget] = useState(q.get("target") || "");
  const [data, setData] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    (async () => {
      let t = target;
      if (!t) {
        // No target: the run's last step's first output.
        const run = await api("/api/runs/" + encodeURIComponent(runId));
        const outputs = run.artifacts.filter((a: Any) => a.source === "output");
        if (!outputs.length) throw new Error("This run has no step outputs to trace.");
        t = outputs[outputs.length - 1].name;
        setTarget(t);
      }
      setData(await api(`/api/lineage/${encodeURIComponent(runId)}?target=${encodeURIComponent(t)}&forward=${forward}`));
    })().catch(setError);
  }, []);
  if (error) return <Fail error={error} />;
  if (!data) return <Muted>Loading…</Muted>;
  const used = data.used_by || [];
  return (
    <div>
      <h1>
        {forward ? "Used by: " : "Lineage of "}
        {target} <span class="muted">{runId}</span>
      </h1>
      <p>
        <a href={`/lineage/${runId}?target=${encodeURIComponent(target)}&forward=${!forward}`}>{forward ? "where it came from" : "who used it"}</a>
      </p>
      {forward ? (
        used.length ? (
          <ul class="tree" id="lineage">
            {used.map((n: Any, i: number) => (
              <Forward node={n} key={i} />
            ))}
          </ul>
        ) : (
          <Muted>No later step or run read it.</Muted>
        )
      ) : (
        <ul class="tree" id="lineage">
          <Back node={data.artifact} />
        </ul>
      )}
    </div>
  );
}
