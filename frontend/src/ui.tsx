// Small shared pieces: status badges, links, key/value tables, errors.
import type { ComponentChildren } from "preact";
import { fmt } from "./api";

export function Badge({ status }: { status: string }) {
  return <span class={"status " + status}>{status}</span>;
}

export function RunLink({ id, label }: { id: string; label?: string }) {
  return <a href={"/runs/" + encodeURIComponent(id)}>{label || id}</a>;
}

export function Fail({ error }: { error: unknown }) {
  const message = error instanceof Error ? error.message : String(error);
  return <div class="error">{message}</div>;
}

export function Muted({ children }: { children: ComponentChildren }) {
  return <p class="muted">{children}</p>;
}

export function KV({ obj, id }: { obj: Record<string, unknown> | null | undefined; id?: string }) {
  const keys = Object.keys(obj || {});
  if (!keys.length) return <Muted>(none)</Muted>;
  return (
    <table class="kv" id={id}>
      <tbody>
        {keys.map((k) => (
          <tr key={k}>
            <td>{k}</td>
            <td>{fmt(obj![k])}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
