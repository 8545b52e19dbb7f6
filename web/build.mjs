// build.mjs: bundles and minifies the web console into OUT (index.html, app.js, app.css).
//   node build.mjs OUT
// Targets what Debian 12's Chromium and Firefox ESR run; no source maps, no eval.
import { execFileSync } from "node:child_process";
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUT");
  process.exit(2);
}
// Type check first (esbuild only strips the types): a type error fails the build.
execFileSync(process.execPath, [join(here, "node_modules/typescript/bin/tsc"), "-p", here], { stdio: "inherit" });
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, legalComments: "none", logLevel: "warning" };
// ES modules with code splitting: app.js is the login screen and the shell; the editor
// (CodeMirror, most of the bytes) is a chunk loaded with import() while the login form shows.
await build({
  ...common,
  entryPoints: { app: join(here, "src/main.ts") },
  outdir: out,
  splitting: true,
  format: "esm",
  entryNames: "[name]",
  chunkNames: "[name]-[hash]",
  target: ["es2020", "chrome100", "firefox102"],
});
await build({ ...common, entryPoints: { app: join(here, "src/app.css") }, outdir: out });
copyFileSync(join(here, "index.html"), join(out, "index.html"));
