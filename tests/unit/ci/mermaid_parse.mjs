// Parse Mermaid diagrams with Mermaid's own parser (the npm package GitHub's renderer uses).
// Usage: node mermaid_parse.mjs NODE_MODULES_PARENT < diagrams.json (a JSON list of texts).
// Prints a JSON list: {"ok": true, "type": "xychart"} or {"ok": false, "error": "..."}.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(join(process.argv[2], "package.json"));
const { JSDOM } = require("jsdom");
// DOMPurify, which mermaid imports, needs a window when it is loaded.
const { window } = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = window;
globalThis.document = window.document;
const mermaid = (await import(pathToFileURL(require.resolve("mermaid")).href)).default;
mermaid.initialize({ startOnLoad: false });

const results = [];
for (const text of JSON.parse(readFileSync(0, "utf8"))) {
  try {
    const parsed = await mermaid.parse(text);
    results.push({ ok: true, type: parsed.diagramType });
  } catch (error) {
    results.push({ ok: false, error: String(error.message || error) });
  }
}
console.log(JSON.stringify(results));
