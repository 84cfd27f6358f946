// QFlow dashboard: one small page per route, drawn from the JSON API. Preact escapes every
// text it renders, so run names, configs or logs cannot inject markup. Chart code (uPlot) is
// a separate chunk, loaded only by pages that draw charts.
import { render } from "preact";
import "./style.css";
import { RunsPage } from "./pages/Runs";
import { RunPage } from "./pages/Run";
import { StepPage } from "./pages/Step";
import { ComparePage } from "./pages/Compare";
import { ModelPage, ModelsPage, PredictPage } from "./pages/Models";
import { LineagePage } from "./pages/Lineage";
import { LaunchList, LaunchPage } from "./pages/Launch";
import { SweepPage, SweepsPage } from "./pages/Sweeps";

function Route() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const [page, arg] = parts;
  if (page === "runs" && parts[2] === "steps" && parts[3]) return <StepPage runId={arg} step={parts[3]} key={parts[3]} />;
  if (!page || page === "runs") return arg ? <RunPage runId={arg} key={arg} /> : <RunsPage />;
  if (page === "compare") return <ComparePage />;
  if (page === "models") return arg ? <ModelPage name={arg} /> : <ModelsPage />;
  if (page === "predict") return <PredictPage modelRef={parts.slice(1).join("/")} />;
  if (page === "lineage") return <LineagePage runId={arg} />;
  if (page === "launch") return arg ? <LaunchPage workflow={arg} /> : <LaunchList />;
  if (page === "sweeps") return arg ? <SweepPage sweepId={arg} /> : <SweepsPage />;
  return <p>Unknown page.</p>;
}

performance.mark("qflow:app"); // the app's code runs (benchmarks/ui_api.py --browser)
const main = document.getElementById("main")!;
main.replaceChildren(); // drop the "Loading…" placeholder
render(<Route />, main);
