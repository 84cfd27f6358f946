// Launch a workflow with config overrides and follow it.
import { useEffect, useState } from "preact/hooks";
import { type Any, api, post, sleep } from "../api";
import { Badge, Fail, Muted, RunLink } from "../ui";

export function LaunchList() {
  const [names, setNames] = useState<string[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api("/api/launch/workflows").then(setNames).catch(setError);
  }, []);
  if (error) return <div><h1>Launch</h1><Fail error={error} /></div>;
  if (!names) return <Muted>Loading…</Muted>;
  return (
    <div>
      <h1>Launch a workflow</h1>
      {names.length ? (
        <ul>
          {names.map((n) => (
            <li key={n}>
              <a href={"/launch/" + encodeURIComponent(n)}>{n}</a>
            </li>
          ))}
        </ul>
      ) : (
        <Muted>This project declares no workflows ([tool.qflow] workflow-modules).</Muted>
      )}
    </div>
  );
}

function Follow({ launchId }: { launchId: string }) {
  const [state, setState] = useState<Any>(null);
  const [run, setRun] = useState<Any>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let stop = false;
    (async () => {
      for (;;) {
        const s = await api("/api/launch/" + launchId);
        if (stop) return;
        setState(s);
        if (s.run_id) {
          try {
            setRun(await api("/api/runs/" + s.run_id));
          } catch {
            /* not recorded yet */
          }
        }
        if (s.state !== "running") return;
        await sleep(1000);
      }
    })().catch(setError);
    return () => {
      stop = true;
    };
  }, [launchId]);
  if (error) return <Fail error={error} />;
  if (!state) return <Muted>Starting…</Muted>;
  return (
    <div>
      <p>
        Launch {launchId}: <Badge status={state.state} /> {state.run_id && <>run <RunLink id={state.run_id} /></>}
      </p>
      {run && (
        <p>
          run status:{" "}
          <span id="launched-status">
            <Badge status={run.status} />
          </span>
        </p>
      )}
      <pre>{state.output || ""}</pre>
    </div>
  );
}

export function LaunchPage({ workflow }: { workflow: string }) {
  const [spec, setSpec] = useState<Any>(null);
  const [values, setValues] = useState<Record<string, string>>({});
  const [launchId, setLaunchId] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const original = (f: Any) => (f.type === "str" ? f.value : JSON.stringify(f.value));
  useEffect(() => {
    api(`/api/launch/workflows/${encodeURIComponent(workflow)}/config`)
      .then((s) => {
        setSpec(s);
        setValues(Object.fromEntries(s.fields.map((f: Any) => [f.key, original(f)])));
      })
      .catch(setError);
  }, []);
  if (error && !spec) return <Fail error={error} />;
  if (!spec) return <Muted>Loading…</Muted>;
  const submit = async (e: Event) => {
    e.preventDefault();
    const overrides = spec.fields.filter((f: Any) => values[f.key] !== original(f)).map((f: Any) => `${f.key}=${values[f.key]}`);
    setError(null);
    try {
      const launch = await post("/api/launch", { workflow, overrides });
      setLaunchId(launch.id);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div>
      <h1>Launch {workflow}</h1>
      {!spec.fields.length && <Muted>This workflow has no config.</Muted>}
      <form class="launch" onSubmit={submit}>
        {spec.fields.map((f: Any) => (
          <label key={f.key}>
            <span class="key">{f.key}</span>
            <input
              type="text"
              name={f.key}
              data-type={f.type}
              value={values[f.key]}
              onInput={(e) => setValues({ ...values, [f.key]: (e.target as HTMLInputElement).value })}
            />{" "}
            <span class="muted">{f.type}</span>
          </label>
        ))}
        <button type="submit" class="primary" id="launch">
          Launch
        </button>
      </form>
      <div id="progress">
        {error !== null && <Fail error={error} />}
        {launchId && <Follow launchId={launchId} key={launchId} />}
      </div>
    </div>
  );
}
