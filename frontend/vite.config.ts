// The dashboard's build: Preact (with React's API for TanStack Table through preact/compat),
// output into the Python package (src/qflow/web/static/app, git-ignored, shipped in the wheel).
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

export default defineConfig({
  plugins: [preact()],
  base: "/static/app/",
  build: {
    outDir: "../src/qflow/web/static/app",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
});
