// Small shared pieces: status badges, links, key/value tables, errors.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
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

/** An image fetched only once it is scrolled into view: the browser's loading="lazy" starts
 * far ahead of the viewport, where a slow image (the run graph, drawn by Graphviz) competes
 * with the page's first render for the server. */
export function InViewImage({ src, alt, id }: { src: string; alt: string; id?: string }) {
  const ref = useRef<HTMLImageElement>(null);
  const [seen, setSeen] = useState(false);
  useEffect(() => {
    if (seen || !ref.current) return;
    const watch = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && setSeen(true));
    watch.observe(ref.current);
    return () => watch.disconnect();
  }, [seen]);
  return <img ref={ref} id={id} src={seen ? src : undefined} alt={alt} />;
}
