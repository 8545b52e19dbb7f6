// api.ts: the console's only way to the proxy: JSON over the HTTP API with the session cookie.
// The CSRF token lives in this module's memory only (never in storage or a URL).

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: number,
    public sqlstate: string,
    message: string,
    public env?: string,
  ) {
    super(message);
  }
}

let csrf = "";
let onExpired: (() => void) | null = null;

export function setCsrf(token: string): void {
  csrf = token;
}

/** Called when the proxy says the session is gone (expired, ended, account deleted). */
export function setExpiredHandler(f: () => void): void {
  onExpired = f;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, 2003, "HY000", "envproxy cannot be reached: " + String(e));
  }
  let data: any = null;
  const text = await res.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const e = data && data.error ? data.error : {};
    const err = new ApiError(res.status, e.code ?? 0, e.sqlstate ?? "HY000", e.message ?? `HTTP ${res.status}`, e.env);
    if (res.status === 401 && path !== "/api/v1/session" && onExpired) onExpired();
    throw err;
  }
  return data as T;
}

export interface Env {
  name: string;
  description: string | null;
  status: string;
  access: string;
  server_version: string | null;
  latency_ms: number | null;
  last_error: string | null;
}

export interface Column {
  name: string;
  type: string;
}

export interface Result {
  env?: string;
  columns: Column[];
  rows: unknown[][];
  row_count: number;
  affected_rows: number;
  truncated: boolean;
  execution_time_ms: number;
  warnings: { level: string; code: number; message: string }[];
  next_page?: number | null;
  error?: { code: number; sqlstate: string; message: string; env?: string };
}

export interface TableInfo {
  name: string;
  type: string;
  columns: { name: string; type: string; nullable: boolean; default: string | null; key: string }[];
  primary_key: string[];
  indexes: { name: string; unique: boolean; columns: string[] }[];
  foreign_keys: { name: string; columns: string[]; ref_table: string; ref_columns: string[] }[];
}

export interface QueryParam {
  name: string;
  type: string;
  required: boolean;
  default: unknown;
}

export interface NamedQuery {
  name: string;
  description: string;
  sql: string;
  params: QueryParam[];
  environments: string[];
  database: string | null;
  owner: string;
}

export interface HistoryEntry {
  id: number;
  at: string;
  env: string | null;
  database: string | null;
  sql: string;
  execution_time_ms: number | null;
  error_code: number;
}
