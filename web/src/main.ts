// main.ts: the envproxy web console: login, environments, schema browser, query editor with
// tabs and history, results grid, fan-out, diff views of __compare, named queries.
import { api, ApiError, setCsrf, setExpiredHandler } from "./api";
import type { Env, HistoryEntry, NamedQuery, Result, TableInfo } from "./api";
import { clear, copyText, download, h } from "./dom";
import { Grid, toCsv, toJson, toTsv } from "./grid";
import type { EditorState, SqlEditor } from "./editor";
import { namedParams } from "./params";

const app = document.getElementById("app")!;
// The nonce of this page's CSP, for the <style> elements the editor adds (see http/console.c).
const nonce = document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? "";

// ---- state ----------------------------------------------------------------------------------

interface Tab {
  title: string;
  state: EditorState;
  results: HTMLElement;
}

const S = {
  user: "",
  envs: [] as Env[],
  env: "",
  db: "",
  databases: [] as string[],
  tables: [] as TableInfo[],
  tabs: [] as Tab[],
  active: 0,
  queries: [] as NamedQuery[],
  expiryTimer: 0,
};

let view: SqlEditor | null = null;
// The editor's module (CodeMirror) is fetched while the login form is shown.
let editorModule: Promise<typeof import("./editor")> | null = null;
function loadEditor(): Promise<typeof import("./editor")> {
  return (editorModule ??= import("./editor"));
}

function isProdLike(e: Env | undefined): boolean {
  return !!e && /(^|[-_])(prod|prd|production|live)([-_]|$)/i.test(e.name);
}

function envOf(name: string): Env | undefined {
  return S.envs.find((e) => e.name === name);
}

function markers(e: Env | undefined): HTMLElement[] {
  if (!e) return [];
  const out: HTMLElement[] = [];
  if (isProdLike(e)) out.push(h("span", { class: "badge prod", title: "production-like environment", text: "PRODUCTION" }));
  if (e.access !== "write") out.push(h("span", { class: "badge ro", title: "this account may only read here", text: "read-only" }));
  return out;
}

// ---- login ----------------------------------------------------------------------------------

function showLogin(message = ""): void {
  view?.destroy();
  view = null;
  S.tabs = [];
  setCsrf("");
  clearTimeout(S.expiryTimer);
  const user = h("input", { id: "login-user", name: "user", autocomplete: "username", required: true, maxLength: 64 });
  const pw = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const msg = h("p", { class: "login-msg", role: "alert", text: message });
  const form = h(
    "form",
    {
      class: "login",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        msg.textContent = "";
        try {
          const r = await api<{ csrf_token: string; user: string; expires_at: string }>("POST", "/api/v1/session", { user: user.value, password: pw.value });
          pw.value = "";
          await start(r.user, r.csrf_token, r.expires_at);
        } catch (e) {
          msg.textContent = e instanceof ApiError ? e.message : String(e);
        }
      },
    },
    h("h1", null, "envproxy"),
    h("label", { for: "login-user" }, "User"),
    user,
    h("label", { for: "login-password" }, "Password"),
    pw,
    h("button", { type: "submit", id: "login-submit", class: "primary" }, "Log in"),
    msg,
  );
  clear(app, h("main", { class: "login-page" }, form));
  user.focus();
  ready();
  setTimeout(() => loadEditor().catch(() => undefined), 0);
}

setExpiredHandler(() => showLogin("Your session has ended. Log in again."));

async function logout(): Promise<void> {
  try {
    await api("DELETE", "/api/v1/session");
  } finally {
    showLogin("Logged out.");
  }
}

// ---- the main screen ------------------------------------------------------------------------

const el = {
  envSelect: null as unknown as HTMLSelectElement,
  envMarkers: null as unknown as HTMLElement,
  dbSelect: null as unknown as HTMLSelectElement,
  side: null as unknown as HTMLElement,
  sidePanel: null as unknown as HTMLElement,
  tabBar: null as unknown as HTMLElement,
  editor: null as unknown as HTMLElement,
  results: null as unknown as HTMLElement,
  runEnvs: null as unknown as HTMLElement,
  compareKey: null as unknown as HTMLInputElement,
  maxRows: null as unknown as HTMLInputElement,
  work: null as unknown as HTMLElement,
};
let sideMode = "schema";

async function start(user: string, csrf: string, expiresAt: string): Promise<void> {
  S.user = user;
  setCsrf(csrf);
  const ms = Date.parse(expiresAt) - Date.now();
  if (ms > 0) S.expiryTimer = window.setTimeout(() => showLogin("Your session has expired. Log in again."), Math.min(ms, 2 ** 31 - 1));
  buildShell();
  const { SqlEditor } = await loadEditor();
  view = new SqlEditor(el.editor, nonce, () => runCurrent());
  await loadEnvs();
  newTab();
  renderSide();
  ready();
}

/** Marks the moment the first screen is usable (the browser tests measure it). */
function ready(): void {
  if (!performance.getEntriesByName("console-ready").length) performance.mark("console-ready");
}

function buildShell(): void {
  el.envSelect = h("select", { id: "env-select", "aria-label": "Environment", onchange: () => selectEnv(el.envSelect.value) });
  el.envMarkers = h("span", { class: "env-markers", id: "env-markers" });
  el.dbSelect = h("select", { id: "db-select", "aria-label": "Database", onchange: () => selectDb(el.dbSelect.value) });
  el.sidePanel = h("div", { class: "side-panel" });
  const nav = h(
    "nav",
    { class: "side-nav", "aria-label": "Panels" },
    [
      ["schema", "Schema"],
      ["envs", "Environments"],
      ["queries", "Named queries"],
      ["history", "History"],
    ].map(([k, label]) =>
      h("button", { id: "nav-" + k, class: "nav-btn", "data-k": k, onclick: () => { sideMode = k; renderSide(); } }, label),
    ),
  );
  el.side = h("aside", { class: "side", id: "side" }, nav, el.sidePanel);
  el.tabBar = h("div", { class: "tab-bar", role: "tablist" });
  el.editor = h("div", { class: "editor", id: "editor" });
  el.runEnvs = h("fieldset", { class: "run-envs", id: "run-envs" });
  el.compareKey = h("input", { id: "compare-key", placeholder: "key (e.g. id)", size: 8, "aria-label": "Compare key column" });
  el.maxRows = h("input", { id: "max-rows", type: "number", min: 1, max: 100000, value: "1000", "aria-label": "Row cap", title: "Row cap" });
  const toolbar = h(
    "div",
    { class: "toolbar", id: "toolbar" },
    h("button", { id: "run", class: "primary", title: "Run the statement under the cursor or the selection (Ctrl+Enter)", onclick: () => runCurrent() }, "Run ▶"),
    h("label", { class: "cap" }, "rows ≤ ", el.maxRows),
    el.runEnvs,
    h("button", { id: "run-multi", title: "Run in every checked environment", onclick: () => runMulti() }, "Run in checked"),
    h("span", { class: "group" }, h("button", { id: "compare-rows", title: "__compare.query between the two checked environments", onclick: () => compareRows() }, "Diff rows"), el.compareKey),
    h("button", { id: "compare-schema", title: "__compare.schema of the database between the two checked environments", onclick: () => compareSchema() }, "Diff schema"),
    h("button", { id: "save-query", title: "Save the editor's statement as a named query", onclick: () => saveDialog(null) }, "Save as named query"),
  );
  el.results = h("section", { class: "results", id: "results", "aria-live": "polite" });
  el.work = h("main", { class: "work" }, el.tabBar, el.editor, toolbar, el.results);
  const header = h(
    "header",
    { class: "top" },
    h("button", { class: "menu", id: "menu", "aria-label": "Show or hide the side panel", onclick: () => el.side.classList.toggle("open") }, "☰"),
    h("strong", { class: "brand" }, "envproxy"),
    h("label", { class: "sel" }, h("span", null, "env"), el.envSelect),
    el.envMarkers,
    h("label", { class: "sel" }, h("span", null, "db"), el.dbSelect),
    h("span", { class: "spacer" }),
    h("span", { class: "who", id: "who", title: "logged in as " + S.user, text: S.user }),
    h("button", { id: "logout", onclick: () => logout() }, "Log out"),
  );
  clear(app, h("div", { class: "shell" }, header, h("div", { class: "body" }, el.side, el.work)));
}

async function loadEnvs(): Promise<void> {
  const r = await api<{ environments: Env[] }>("GET", "/api/v1/environments");
  S.envs = r.environments;
  clear(el.envSelect, S.envs.map((e) => h("option", { value: e.name, text: `${e.name}${e.status === "up" ? "" : " (" + e.status + ")"}` })));
  clear(
    el.runEnvs,
    h("legend", null, "environments"),
    S.envs.map((e) =>
      h("label", { class: "chk" + (isProdLike(e) ? " prod" : "") }, h("input", { type: "checkbox", value: e.name, "data-env": e.name }), e.name),
    ),
  );
  const first = S.envs.find((e) => e.status === "up") ?? S.envs[0];
  if (first) await selectEnv(first.name);
}

async function selectEnv(name: string): Promise<void> {
  S.env = name;
  el.envSelect.value = name;
  const e = envOf(name);
  clear(el.envMarkers, markers(e));
  el.work.classList.toggle("prod", isProdLike(e));
  el.work.classList.toggle("readonly", !!e && e.access !== "write");
  S.databases = [];
  S.tables = [];
  try {
    const r = await api<{ databases: string[] }>("GET", `/api/v1/environments/${encodeURIComponent(name)}/databases`);
    S.databases = r.databases;
  } catch (err) {
    S.databases = [];
  }
  clear(el.dbSelect, S.databases.map((d) => h("option", { value: d, text: d })));
  let keep = S.databases.includes(S.db) ? S.db : "";
  if (!keep) {
    // The environment's own default database (its `database` setting), as a MySQL client gets.
    try {
      const r = await api<Result>("POST", "/api/v1/query", { sql: "SELECT DATABASE() AS db", env: name });
      const d = r.rows[0]?.[0];
      if (typeof d === "string" && S.databases.includes(d)) keep = d;
    } catch {
      /* the first one below */
    }
  }
  await selectDb(keep || S.databases[0] || "");
}

async function selectDb(db: string): Promise<void> {
  S.db = db;
  el.dbSelect.value = db;
  S.tables = [];
  if (db) {
    try {
      const r = await api<{ tables: TableInfo[] }>("GET", `/api/v1/environments/${encodeURIComponent(S.env)}/databases/${encodeURIComponent(db)}/schema`);
      S.tables = r.tables;
    } catch {
      S.tables = [];
    }
  }
  configureSql();
  if (sideMode === "schema" || sideMode === "envs") renderSide();
  app.dataset.loaded = `${S.env}/${db}`; // what is shown (the browser tests wait for it)
}

// ---- editor and tabs ------------------------------------------------------------------------

function configureSql(): void {
  view?.setSchema(S.tables, openTable);
}

function newTab(doc = ""): void {
  saveTab();
  const n = S.tabs.length + 1;
  S.tabs.push({ title: "Query " + n, state: view!.newState(doc), results: h("div", { class: "tab-results" }) });
  showTab(S.tabs.length - 1);
}

function saveTab(): void {
  const t = S.tabs[S.active];
  if (t && view) t.state = view.state;
}

function showTab(i: number): void {
  saveTab();
  S.active = i;
  const t = S.tabs[i];
  view?.setState(t.state);
  clear(el.results, t.results);
  renderTabs();
  view?.focus();
}

function closeTab(i: number): void {
  if (S.tabs.length === 1) return;
  saveTab();
  S.tabs.splice(i, 1);
  S.active = Math.min(S.active, S.tabs.length - 1);
  if (view) view.setState(S.tabs[S.active].state);
  showTab(S.active);
}

function renderTabs(): void {
  clear(
    el.tabBar,
    S.tabs.map((t, i) =>
      h(
        "span",
        { class: "tab" + (i === S.active ? " active" : "") },
        h("button", { role: "tab", "aria-selected": String(i === S.active), class: "tab-title", onclick: () => showTab(i) }, t.title),
        S.tabs.length > 1 && h("button", { class: "tab-close", "aria-label": "Close " + t.title, onclick: () => closeTab(i) }, "×"),
      ),
    ),
    h("button", { class: "tab-new", id: "tab-new", "aria-label": "New tab", onclick: () => newTab() }, "+"),
  );
}

function setEditor(text: string): void {
  view?.setText(text);
}

function currentSql(): string {
  return view ? view.currentSql() : "";
}

function checkedEnvs(): string[] {
  return Array.from(el.runEnvs.querySelectorAll<HTMLInputElement>("input:checked")).map((i) => i.value);
}

function maxRows(): number | undefined {
  const n = Number(el.maxRows.value);
  return Number.isInteger(n) && n >= 1 ? n : undefined;
}

// ---- running --------------------------------------------------------------------------------

function results(): HTMLElement {
  return S.tabs[S.active].results;
}

function busy(label: string): void {
  clear(results(), h("p", { class: "busy", text: label }));
}

function errorBox(e: { code: number; sqlstate?: string; message: string; env?: string }, env: string): HTMLElement {
  const where = e.env || env;
  const refused = e.code === 1290;
  return h(
    "div",
    { class: "error" + (refused ? " refused" : ""), role: "alert" },
    h("strong", null, refused ? `Refused in ${where}` : `Error in ${where}`),
    h("span", { class: "code" }, ` ${e.code ? "ERROR " + e.code : ""}${e.sqlstate ? " (" + e.sqlstate + ")" : ""}`),
    h("p", { class: "msg", text: e.message }),
    refused && h("p", { class: "hint", text: `envproxy did not send this statement to ${where}: ${where} is read-only for this account or environment. Run it in an environment where you may write, or ask for a grant.` }),
  );
}

async function record(sqlText: string, env: string, ms: number | null, code: number): Promise<void> {
  try {
    await api("POST", "/api/v1/history", { sql: sqlText.slice(0, 65536), env: env || null, database: S.db || null, execution_time_ms: ms, error_code: code });
    if (sideMode === "history") renderSide();
  } catch {
    /* history is best effort */
  }
}

function resultView(r: Result, title: string, extra?: { diff?: boolean }): HTMLElement {
  if (r.error) return errorBox(r.error, r.env ?? title);
  const info = h(
    "span",
    { class: "info" },
    r.columns.length ? `${r.row_count} row${r.row_count === 1 ? "" : "s"}` : `${r.affected_rows} row${r.affected_rows === 1 ? "" : "s"} affected`,
    ` · ${r.execution_time_ms.toFixed(1)} ms`,
    r.truncated && h("span", { class: "badge trunc", title: "rows were left out by the row cap", text: `truncated at ${r.rows.length} rows` }),
  );
  const warnings = r.warnings && r.warnings.length
    ? h("ul", { class: "warnings" }, r.warnings.map((w) => h("li", { text: `${w.level} ${w.code}: ${w.message}` })))
    : null;
  if (!r.columns.length) return h("div", { class: "result" }, h("div", { class: "result-head" }, h("strong", null, title), info), warnings);
  const opts = extra?.diff ? diffOptions(r) : {};
  const grid = new Grid(r.columns, r.rows, opts);
  const base = "envproxy-" + title.replace(/[^A-Za-z0-9_-]+/g, "_");
  const actions = h(
    "span",
    { class: "actions" },
    h("button", { class: "copy-tsv", onclick: () => copyText(toTsv(r.columns, grid.shownRows())) }, "Copy TSV"),
    h("button", { class: "export-csv", onclick: () => download(base + ".csv", "text/csv", toCsv(r.columns, grid.shownRows())) }, "CSV"),
    h("button", { class: "export-json", onclick: () => download(base + ".json", "application/json", toJson(r.columns, grid.shownRows())) }, "JSON"),
  );
  const node = h("div", { class: "result" + (extra?.diff ? " diff" : "") }, h("div", { class: "result-head" }, h("strong", { text: title }), info, actions), warnings, extra?.diff && legend(), grid.el);
  requestAnimationFrame(() => grid.render());
  return node;
}

function legend(): HTMLElement {
  return h(
    "div",
    { class: "legend" },
    h("span", { class: "only_left" }, "only left"),
    h("span", { class: "only_right" }, "only right"),
    h("span", { class: "changed" }, "changed"),
  );
}

/** Diff views: rows coloured by _diff; in a changed pair (left row, then right row, or one
 * row with left_definition/right_definition) the values that differ are highlighted. */
function diffOptions(r: Result) {
  const d = r.columns.findIndex((c) => c.name === "_diff");
  const envCol = r.columns.findIndex((c) => c.name === "_env");
  const ld = r.columns.findIndex((c) => c.name === "left_definition");
  const rd = r.columns.findIndex((c) => c.name === "right_definition");
  const partner = new Map<number, number>();
  for (let i = 0; i + 1 < r.rows.length; i++) {
    if (r.rows[i][d] === "changed" && r.rows[i + 1][d] === "changed" && envCol >= 0 && r.rows[i][envCol] !== r.rows[i + 1][envCol]) {
      partner.set(i, i + 1);
      partner.set(i + 1, i);
      i++;
    }
  }
  return {
    rowClass: (i: number) => "diff-" + String(r.rows[i][d] ?? ""),
    cellChanged: (i: number, j: number) => {
      if (r.rows[i][d] !== "changed" || j === d || j === envCol) return false;
      if (ld >= 0 && rd >= 0) return (j === ld || j === rd) && JSON.stringify(r.rows[i][ld]) !== JSON.stringify(r.rows[i][rd]);
      const p = partner.get(i);
      return p !== undefined && JSON.stringify(r.rows[i][j]) !== JSON.stringify(r.rows[p][j]);
    },
  };
}

async function runCurrent(): Promise<void> {
  const text = currentSql();
  if (!text) return;
  const env = S.env;
  busy(`Running in ${env}…`);
  const t0 = performance.now();
  try {
    const r = await api<Result>("POST", "/api/v1/query", { sql: text, env, database: S.db || undefined, max_rows: maxRows() });
    clear(results(), resultView(r, env));
    record(text, env, r.execution_time_ms, 0);
  } catch (e) {
    const err = e as ApiError;
    clear(results(), errorBox(err, env));
    record(text, env, performance.now() - t0, err.code || 0);
  }
}

async function runMulti(): Promise<void> {
  const text = currentSql();
  const envs = checkedEnvs();
  if (!text) return;
  if (envs.length < 1) {
    clear(results(), errorBox({ code: 0, message: "Check one or more environments to run in." }, "the console"));
    return;
  }
  busy(`Running in ${envs.join(", ")}…`);
  try {
    const r = await api<{ results: Record<string, Result> }>("POST", "/api/v1/query", { sql: text, envs, database: S.db || undefined, max_rows: maxRows() });
    const mergeBtn = h("button", { id: "merge", onclick: () => clear(panes, merged(r.results, envs)) }, "One grid with _env");
    const sideBtn = h("button", { id: "side-by-side", onclick: () => clear(panes, envs.map((e) => resultView(r.results[e], e))) }, "Side by side");
    const panes = h("div", { class: "panes" }, envs.map((e) => resultView(r.results[e], e)));
    clear(results(), h("div", { class: "multi" }, h("div", { class: "result-head" }, h("strong", null, "Fan-out"), sideBtn, mergeBtn), panes));
    record(text, envs.join(","), null, 0);
  } catch (e) {
    clear(results(), errorBox(e as ApiError, envs.join(", ")));
  }
}

function merged(results: Record<string, Result>, envs: string[]): HTMLElement {
  const ok = envs.filter((e) => !results[e].error);
  if (!ok.length) return h("div", null, envs.map((e) => resultView(results[e], e)));
  const cols = results[ok[0]].columns;
  const same = ok.every((e) => JSON.stringify(results[e].columns) === JSON.stringify(cols));
  if (!same) return h("div", null, errorBox({ code: 0, message: "The environments answered with different columns; see them side by side." }, "the console"));
  const rows: unknown[][] = [];
  let ms = 0, truncated = false;
  for (const e of ok) {
    for (const row of results[e].rows) rows.push([e, ...row]);
    ms = Math.max(ms, results[e].execution_time_ms);
    truncated ||= results[e].truncated;
  }
  const r: Result = { columns: [{ name: "_env", type: "varchar" }, ...cols], rows, row_count: rows.length, affected_rows: 0, truncated, execution_time_ms: ms, warnings: [] };
  return h("div", null, resultView(r, ok.join("+")), envs.filter((e) => results[e].error).map((e) => errorBox(results[e].error!, e)));
}

function twoEnvs(): string[] | null {
  const envs = checkedEnvs();
  if (envs.length !== 2) {
    clear(results(), errorBox({ code: 0, message: "Check exactly two environments (left and right, in the order shown) to compare." }, "the console"));
    return null;
  }
  return envs;
}

async function compareRows(): Promise<void> {
  const text = currentSql();
  const envs = twoEnvs();
  if (!text || !envs) return;
  const key = el.compareKey.value.trim();
  busy(`Comparing ${envs[0]} and ${envs[1]}…`);
  try {
    const r = await api<Result>("POST", "/api/v1/query", { sql: text, database: S.db || undefined, compare: key ? { envs, key } : { envs } });
    clear(results(), resultView(r, `compare ${envs[0]} ↔ ${envs[1]}`, { diff: true }));
  } catch (e) {
    clear(results(), errorBox(e as ApiError, envs.join(" ↔ ")));
  }
}

async function compareSchema(): Promise<void> {
  const envs = twoEnvs();
  if (!envs || !S.db) return;
  busy(`Comparing the schema of ${S.db} in ${envs[0]} and ${envs[1]}…`);
  const q = `SELECT * FROM __compare.schema WHERE envs = '${envs.join(",")}' AND db = '${S.db}'`;
  try {
    const r = await api<Result>("POST", "/api/v1/query", { sql: q, env: envs[0] });
    clear(results(), resultView(r, `schema ${S.db}: ${envs[0]} ↔ ${envs[1]}`, { diff: true }));
  } catch (e) {
    clear(results(), errorBox(e as ApiError, envs.join(" ↔ ")));
  }
}

// ---- side panels ----------------------------------------------------------------------------

function renderSide(): void {
  el.side.querySelectorAll<HTMLElement>(".nav-btn").forEach((b) => b.classList.toggle("active", b.dataset.k === sideMode));
  if (sideMode === "schema") renderSchema();
  else if (sideMode === "envs") renderEnvs();
  else if (sideMode === "queries") renderQueries();
  else renderHistory();
}

let schemaFilter = "";
let openTable = "";

function renderSchema(): void {
  const filter = h("input", { id: "schema-filter", type: "search", placeholder: "filter tables and columns", value: schemaFilter, "aria-label": "Filter tables and columns" });
  const list = h("ul", { class: "tables", id: "tables" });
  const detail = h("div", { class: "table-detail", id: "table-detail" });
  const draw = () => {
    const f = schemaFilter.toLowerCase();
    const shown = S.tables.filter((t) => !f || t.name.toLowerCase().includes(f) || t.columns.some((c) => c.name.toLowerCase().includes(f)));
    clear(
      list,
      shown.map((t) =>
        h("li", null, h("button", { class: "table-btn" + (t.name === openTable ? " open" : ""), "data-table": t.name, title: t.name, onclick: () => { openTable = t.name; draw(); } },
          h("span", { class: "kind " + t.type, text: t.type === "view" ? "V" : "T" }), h("span", { class: "tname", text: t.name }))),
      ),
      !shown.length && h("li", { class: "empty", text: S.tables.length ? "nothing matches" : "no tables" }),
    );
    const t = S.tables.find((x) => x.name === openTable);
    configureSql();
    clear(detail, t ? tableDetail(t, (name) => { openTable = name; schemaFilter = ""; filter.value = ""; draw(); detail.scrollIntoView({ block: "nearest" }); }) : null);
  };
  filter.addEventListener("input", () => { schemaFilter = filter.value; draw(); });
  clear(el.sidePanel, h("div", { class: "crumbs" }, h("span", { text: S.env }), " › ", h("span", { text: S.db || "—" })), filter, list, detail);
  draw();
}

function tableDetail(t: TableInfo, follow: (name: string) => void): HTMLElement {
  const fkCols = new Set(t.foreign_keys.flatMap((f) => f.columns));
  const referencing = S.tables.flatMap((o) => o.foreign_keys.filter((f) => f.ref_table === t.name).map((f) => ({ table: o.name, fk: f })));
  return h(
    "div",
    null,
    h("h3", { class: "tdname" }, h("span", { text: t.name }), " ", h("button", { class: "small insert-select", onclick: () => setEditor(`SELECT * FROM \`${t.name}\` LIMIT 100;`) }, "SELECT")),
    h("table", { class: "cols" },
      h("thead", null, h("tr", null, h("th", null, "column"), h("th", null, "type"), h("th", null, "null"), h("th", null, "key"))),
      h("tbody", null, t.columns.map((c) =>
        h("tr", null,
          h("td", { class: "cname", text: c.name, title: c.name }),
          h("td", { class: "ctype", text: c.type }),
          h("td", { text: c.nullable ? "yes" : "no" }),
          h("td", null,
            t.primary_key.includes(c.name) && h("span", { class: "mark pk", title: "primary key", text: "PK" }),
            fkCols.has(c.name) && h("span", { class: "mark fk", title: "foreign key", text: "FK" }),
            c.key === "UNI" && h("span", { class: "mark uq", title: "unique", text: "UQ" }))))),
    ),
    t.foreign_keys.length > 0 && h("div", { class: "rels" }, h("h4", null, "References"),
      t.foreign_keys.map((f) => h("button", { class: "fk-link", "data-ref": f.ref_table, title: f.name, onclick: () => follow(f.ref_table) }, `${f.columns.join(", ")} → ${f.ref_table} (${f.ref_columns.join(", ")})`))),
    referencing.length > 0 && h("div", { class: "rels" }, h("h4", null, "Referenced by"),
      referencing.map((x) => h("button", { class: "ref-link", "data-ref": x.table, title: x.fk.name, onclick: () => follow(x.table) }, `${x.table} (${x.fk.columns.join(", ")})`))),
  );
}

function renderEnvs(): void {
  clear(
    el.sidePanel,
    h("ul", { class: "envs", id: "envs" }, S.envs.map((e) =>
      h("li", { class: e.name === S.env ? "current" : "" },
        h("button", { class: "env-btn", "data-env": e.name, onclick: () => selectEnv(e.name).then(renderSide) },
          h("span", { class: "dot " + e.status, title: e.status }),
          h("span", { class: "ename", text: e.name }),
          markers(e),
          h("span", { class: "meta", text: `${e.status}${e.latency_ms != null ? " · " + e.latency_ms.toFixed(1) + " ms" : ""} · ${e.access}` })),
        e.description && h("p", { class: "desc", text: e.description }),
        e.last_error && e.status !== "up" && h("p", { class: "desc err", text: e.last_error }))),
    ),
    h("button", { id: "envs-refresh", onclick: async () => { await loadEnvsKeep(); renderSide(); } }, "Refresh"),
  );
}

async function loadEnvsKeep(): Promise<void> {
  const cur = S.env;
  const r = await api<{ environments: Env[] }>("GET", "/api/v1/environments");
  S.envs = r.environments;
  if (cur) clear(el.envMarkers, markers(envOf(cur)));
}

let querySearch = "";

async function renderQueries(): Promise<void> {
  try {
    S.queries = (await api<{ queries: NamedQuery[] }>("GET", "/api/v1/queries")).queries;
  } catch (e) {
    clear(el.sidePanel, errorBox(e as ApiError, "the proxy"));
    return;
  }
  const search = h("input", { id: "query-search", type: "search", placeholder: "search named queries", value: querySearch, "aria-label": "Search named queries" });
  const list = h("ul", { class: "queries", id: "queries" });
  const form = h("div", { class: "query-form", id: "query-form" });
  const draw = () => {
    const f = querySearch.toLowerCase();
    clear(list, S.queries.filter((q) => !f || q.name.toLowerCase().includes(f) || (q.description || "").toLowerCase().includes(f)).map((q) =>
      h("li", null, h("button", { class: "query-btn", "data-query": q.name, onclick: () => clear(form, queryForm(q)) },
        h("span", { class: "qname", text: q.name }), h("span", { class: "desc", text: q.description || "" })))));
  };
  search.addEventListener("input", () => { querySearch = search.value; draw(); });
  clear(el.sidePanel, search, list, form);
  draw();
}

function paramInput(p: NamedQuery["params"][number]): HTMLInputElement {
  const id = "param-" + p.name;
  const d = p.default === null || p.default === undefined ? "" : String(p.default);
  switch (p.type) {
    case "int": return h("input", { id, name: p.name, type: "number", step: 1, value: d, required: p.required });
    case "decimal": return h("input", { id, name: p.name, inputMode: "decimal", pattern: "-?[0-9]+(\\.[0-9]+)?", value: d, required: p.required });
    case "date": return h("input", { id, name: p.name, type: "date", value: d, required: p.required });
    case "datetime": return h("input", { id, name: p.name, type: "datetime-local", step: 1, value: d.replace(" ", "T"), required: p.required });
    case "bool": return h("input", { id, name: p.name, type: "checkbox", checked: d === "true" || d === "1" });
    default: return h("input", { id, name: p.name, value: d, required: p.required });
  }
}

function queryForm(q: NamedQuery): HTMLElement {
  const inputs = q.params.map((p) => ({ p, input: paramInput(p) }));
  const allowed = q.environments.length ? S.envs.filter((e) => q.environments.includes(e.name)) : S.envs;
  const env = h("select", { id: "query-env", "aria-label": "Environment" }, allowed.map((e) => h("option", { value: e.name, text: e.name, selected: e.name === S.env })));
  const mine = q.owner === S.user;
  return h(
    "form",
    {
      class: "run-form",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        const params: Record<string, unknown> = {};
        for (const { p, input } of inputs) {
          if (p.type === "bool") params[p.name] = input.checked;
          else if (input.value === "") continue;
          else if (p.type === "int") params[p.name] = Number(input.value);
          else if (p.type === "datetime") params[p.name] = input.value.replace("T", " ");
          else params[p.name] = input.value;
        }
        busy(`Running ${q.name} in ${env.value}…`);
        try {
          const r = await api<Result>("POST", `/api/v1/queries/${encodeURIComponent(q.name)}/run`, { env: env.value, params, page: 1, page_size: Math.min(maxRows() ?? 100, 10000) });
          clear(results(), resultView(r, `${q.name} @ ${env.value}`));
        } catch (e) {
          clear(results(), errorBox(e as ApiError, env.value));
        }
      },
    },
    h("h3", { text: q.name }),
    q.description && h("p", { class: "desc", text: q.description }),
    h("pre", { class: "qsql", text: q.sql }),
    inputs.map(({ p, input }) => h("label", { class: "param", for: input.id }, h("span", { text: `${p.name} (${p.type}${p.required ? "" : ", optional"})` }), input)),
    h("label", { class: "param" }, h("span", null, "environment"), env),
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary", id: "query-run" }, "Run"),
      h("button", { type: "button", onclick: () => setEditor(q.sql) }, "To editor"),
      mine && h("button", { type: "button", class: "edit-query", onclick: () => saveDialog(q) }, "Edit"),
      mine && h("button", { type: "button", class: "delete-query danger", onclick: async () => {
        if (!confirm(`Delete the named query ${q.name}?`)) return;
        try { await api("DELETE", `/api/v1/queries/${encodeURIComponent(q.name)}`); renderQueries(); }
        catch (e) { clear(results(), errorBox(e as ApiError, "the proxy")); }
      } }, "Delete")),
  );
}

/** Saves the editor's statement as a new named query, or edits q (its owner's). */
function saveDialog(q: NamedQuery | null): void {
  const text = q ? q.sql : currentSql();
  const name = h("input", { id: "nq-name", required: true, pattern: "[A-Za-z0-9_]+", value: q?.name ?? "", readOnly: !!q });
  const desc = h("input", { id: "nq-desc", value: q?.description ?? "" });
  const sqlBox = h("textarea", { id: "nq-sql", rows: 5, required: true });
  sqlBox.value = text;
  const paramsBox = h("div", { class: "nq-params" });
  const types = ["int", "decimal", "string", "date", "datetime", "bool"];
  const drawParams = () => {
    const names = namedParams(sqlBox.value);
    clear(paramsBox, names.map((n) => {
      const old = q?.params.find((p) => p.name === n);
      return h("div", { class: "nq-param", "data-param": n },
        h("span", { class: "pname", text: ":" + n }),
        h("select", { class: "ptype", "aria-label": `type of ${n}` }, types.map((t) => h("option", { value: t, text: t, selected: (old?.type ?? "string") === t }))),
        h("input", { class: "pdefault", placeholder: "default (empty: required)", "aria-label": `default of ${n}`, value: old && old.default != null ? String(old.default) : "" }));
    }));
  };
  sqlBox.addEventListener("input", drawParams);
  drawParams();
  const envBoxes = S.envs.map((e) => h("label", { class: "chk" }, h("input", { type: "checkbox", value: e.name, checked: q ? q.environments.includes(e.name) : false }), e.name));
  const msg = h("p", { class: "msg", role: "alert" });
  const dlg = h("dialog", { class: "dlg", id: "save-dialog" });
  const form = h(
    "form",
    {
      method: "dialog",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        const params = Array.from(paramsBox.querySelectorAll<HTMLElement>(".nq-param")).map((d) => {
          const type = d.querySelector<HTMLSelectElement>(".ptype")!.value;
          const dv = d.querySelector<HTMLInputElement>(".pdefault")!.value;
          const def = dv === "" ? null : type === "int" ? Number(dv) : type === "bool" ? dv === "true" || dv === "1" : dv;
          return { name: d.dataset.param!, type, required: dv === "", default: def };
        });
        const body = {
          name: name.value,
          description: desc.value,
          sql: sqlBox.value,
          params,
          environments: envBoxes.map((l) => l.querySelector("input")!).filter((i) => i.checked).map((i) => i.value),
          database: S.db || null,
        };
        try {
          if (q) await api("PUT", `/api/v1/queries/${encodeURIComponent(q.name)}`, body);
          else await api("POST", "/api/v1/queries", body);
          dlg.close();
          dlg.remove();
          sideMode = "queries";
          renderSide();
        } catch (e) {
          msg.textContent = e instanceof ApiError ? e.message : String(e);
        }
      },
    },
    h("h2", null, q ? `Edit ${q.name}` : "Save as named query"),
    h("label", { for: "nq-name" }, "Name"), name,
    h("label", { for: "nq-desc" }, "Description"), desc,
    h("label", { for: "nq-sql" }, "SQL (parameters as :name)"), sqlBox,
    paramsBox,
    h("fieldset", { class: "envs-pick" }, h("legend", null, "May run in (none checked: wherever the caller may read)"), envBoxes),
    msg,
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary", id: "nq-save" }, "Save"),
      h("button", { type: "button", onclick: () => { dlg.close(); dlg.remove(); } }, "Cancel")),
  );
  dlg.appendChild(form);
  document.body.appendChild(dlg);
  dlg.showModal();
}

async function renderHistory(): Promise<void> {
  let items: HistoryEntry[] = [];
  try {
    items = (await api<{ history: HistoryEntry[] }>("GET", "/api/v1/history?limit=100")).history;
  } catch (e) {
    clear(el.sidePanel, errorBox(e as ApiError, "the proxy"));
    return;
  }
  if (sideMode !== "history") return;
  clear(
    el.sidePanel,
    h("ul", { class: "history", id: "history" }, items.map((it) =>
      h("li", null, h("button", { class: "hist-btn" + (it.error_code ? " failed" : ""), title: it.sql, onclick: () => setEditor(it.sql) },
        h("span", { class: "hsql", text: it.sql.length > 200 ? it.sql.slice(0, 200) + "…" : it.sql }),
        h("span", { class: "meta", text: `${it.env ?? ""} · ${it.at.replace("T", " ").replace("Z", "")}${it.error_code ? " · error " + it.error_code : ""}` })))),
      !items.length && h("li", { class: "empty", text: "nothing run yet" })),
    items.length > 0 && h("button", { id: "history-clear", class: "danger", onclick: async () => { await api("DELETE", "/api/v1/history"); renderSide(); } }, "Clear history"),
  );
}

// ---- start ----------------------------------------------------------------------------------

(async () => {
  try {
    const s = await api<{ user: string | null; csrf_token?: string; expires_at?: string }>("GET", "/api/v1/session");
    if (s.user && s.csrf_token && s.expires_at) await start(s.user, s.csrf_token, s.expires_at);
    else showLogin();
  } catch {
    showLogin();
  }
})();
