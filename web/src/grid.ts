// grid.ts: the results grid: typed columns, NULL shown apart from the string 'NULL', sorting,
// and virtualised rows (only the rows in view are in the DOM, so 10,000 rows stay smooth).
import type { Column } from "./api";
import { h } from "./dom";

const ROW_H = 26;
const OVERSCAN = 10;
const NUMERIC = /^(tinyint|smallint|mediumint|int|integer|bigint|decimal|numeric|float|double|real|year|bit)\b/;

export function isNumeric(type: string): boolean {
  return NUMERIC.test(type);
}

/** The text of a value as the grid, TSV and CSV show it (null stays null). */
export function cellText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "object") {
    const b = (v as { base64?: string }).base64;
    if (typeof b === "string") return "base64:" + b;
    return JSON.stringify(v);
  }
  return String(v);
}

export interface GridOptions {
  /** Extra class of a row (diff views), by the row's index in the result. */
  rowClass?: (row: number) => string;
  /** Whether a cell differs from its counterpart (diff views). */
  cellChanged?: (row: number, col: number) => boolean;
}

export class Grid {
  readonly el: HTMLDivElement;
  private body: HTMLDivElement;
  private order: number[];
  private sortCol = -1;
  private sortDir = 1;
  private widths: number[];
  private frame = 0;
  private rendered = "";

  constructor(
    private columns: Column[],
    private rows: unknown[][],
    private opts: GridOptions = {},
  ) {
    this.order = rows.map((_, i) => i);
    this.widths = columns.map((c, j) => this.measure(c, j));
    const total = this.widths.reduce((a, b) => a + b, 0);
    const head = h(
      "div",
      { class: "grid-head", role: "row", style: undefined },
      columns.map((c, j) =>
        h(
          "button",
          {
            class: "grid-th" + (isNumeric(c.type) ? " num" : ""),
            role: "columnheader",
            title: `${c.name} (${c.type}): sort`,
            onclick: () => this.sort(j),
          },
          h("span", { class: "th-name", text: c.name }),
          h("span", { class: "th-type", text: c.type }),
        ),
      ),
    );
    this.body = h("div", { class: "grid-body", role: "rowgroup" });
    this.body.style.height = rows.length * ROW_H + "px";
    const inner = h("div", { class: "grid-inner" }, head, this.body);
    inner.style.width = total + "px";
    this.el = h("div", { class: "grid", role: "table", tabIndex: 0, "aria-rowcount": rows.length }, inner);
    head.childNodes.forEach((n, j) => ((n as HTMLElement).style.width = this.widths[j] + "px"));
    this.el.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.el);
  }

  /** A column's width from its name and a sample of its values, within 64..360 px. */
  private measure(c: Column, j: number): number {
    let chars = Math.max(c.name.length, c.type.length * 0.8);
    // Up to 200 rows spread over the whole result (the last rows are often the longest).
    const step = Math.max(1, Math.floor(this.rows.length / 200));
    for (let i = 0; i < this.rows.length; i += step) {
      const t = cellText(this.rows[i][j]);
      chars = Math.max(chars, t === null ? 4 : Math.min(t.length, 60));
    }
    return Math.round(Math.min(360, Math.max(64, chars * 7.6 + 18)));
  }

  private sort(j: number): void {
    if (this.sortCol === j) this.sortDir = -this.sortDir;
    else {
      this.sortCol = j;
      this.sortDir = 1;
    }
    const num = isNumeric(this.columns[j].type);
    const dir = this.sortDir;
    const key = (v: unknown): number | string | null => {
      const t = cellText(v);
      if (t === null) return null;
      return num ? Number(t) : t;
    };
    const keys = this.rows.map((r) => key(r[j]));
    this.order.sort((a, b) => {
      const x = keys[a], y = keys[b];
      if (x === y) return a - b;
      if (x === null) return -dir;
      if (y === null) return dir;
      return (x < y ? -1 : 1) * dir;
    });
    this.el.querySelectorAll(".grid-th").forEach((th, k) => {
      th.classList.toggle("asc", k === j && dir > 0);
      th.classList.toggle("desc", k === j && dir < 0);
      th.setAttribute("aria-sort", k === j ? (dir > 0 ? "ascending" : "descending") : "none");
    });
    this.rendered = "";
    this.schedule();
  }

  /** Rows in the order shown (sorted or not). */
  shownRows(): unknown[][] {
    return this.order.map((i) => this.rows[i]);
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render(): void {
    const top = Math.max(0, this.el.scrollTop - ROW_H);
    const height = this.el.clientHeight || 400;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    const sig = first + ":" + last;
    if (sig === this.rendered) return;
    this.rendered = sig;
    const frag = document.createDocumentFragment();
    for (let k = first; k < last; k++) frag.appendChild(this.row(k));
    this.body.replaceChildren(frag);
  }

  private row(k: number): HTMLElement {
    const i = this.order[k];
    const r = this.rows[i];
    const el = document.createElement("div");
    el.className = "grid-row" + (k % 2 ? " odd" : "") + (this.opts.rowClass ? " " + this.opts.rowClass(i) : "");
    el.setAttribute("role", "row");
    el.style.top = k * ROW_H + "px";
    for (let j = 0; j < this.columns.length; j++) {
      const c = document.createElement("div");
      const t = cellText(r[j]);
      let cls = "cell";
      if (isNumeric(this.columns[j].type)) cls += " num";
      if (t === null) {
        cls += " null";
        c.textContent = "NULL";
      } else {
        c.textContent = t.length > 500 ? t.slice(0, 500) + "…" : t;
        if (t.length > 40) c.title = t.length > 2000 ? t.slice(0, 2000) + "…" : t;
      }
      if (this.opts.cellChanged && this.opts.cellChanged(i, j)) cls += " changed";
      c.className = cls;
      c.setAttribute("role", "cell");
      c.style.width = this.widths[j] + "px";
      el.appendChild(c);
    }
    return el;
  }
}

function csvField(t: string | null): string {
  if (t === null) return "";
  return /[",\r\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
}

export function toCsv(columns: Column[], rows: unknown[][]): string {
  const lines = [columns.map((c) => csvField(c.name)).join(",")];
  for (const r of rows) lines.push(r.map((v) => csvField(cellText(v))).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** TSV as spreadsheets paste it: NULL as \N, tabs and newlines in values escaped. */
export function toTsv(columns: Column[], rows: unknown[][]): string {
  const f = (t: string | null) => (t === null ? "\\N" : t.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\r?\n/g, "\\n"));
  const lines = [columns.map((c) => f(c.name)).join("\t")];
  for (const r of rows) lines.push(r.map((v) => f(cellText(v))).join("\t"));
  return lines.join("\n") + "\n";
}

export function toJson(columns: Column[], rows: unknown[][]): string {
  return JSON.stringify(rows.map((r) => Object.fromEntries(columns.map((c, j) => [c.name, r[j] ?? null]))), null, 1) + "\n";
}
