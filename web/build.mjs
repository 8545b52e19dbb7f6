// build.mjs: bundles and minifies the web console into OUT (index.html, app.js, app.css).
//   node build.mjs OUT
// Targets what Debian 12's Chromium and Firefox ESR run; no source maps, no eval.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUT");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, legalComments: "none", logLevel: "warning" };
await build({
  ...common,
  entryPoints: [join(here, "src/main.ts")],
  outfile: join(out, "app.js"),
  format: "iife",
  target: ["es2020", "chrome100", "firefox102"],
});
await build({ ...common, entryPoints: [join(here, "src/app.css")], outfile: join(out, "app.css") });
copyFileSync(join(here, "index.html"), join(out, "index.html"));
