// params.ts: the :name parameters of a named query's SQL, as the save dialog proposes them
// (the proxy's lexer decides when the query is saved).

/** The :name parameters of a named query's SQL (outside quotes and comments). */
export function namedParams(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === "'" || c === '"' || c === "`") {
      i++;
      while (i < n && text[i] !== c) i += text[i] === "\\" && c !== "`" ? 2 : 1;
      i++;
    } else if (c === "#" || (c === "-" && text[i + 1] === "-")) {
      while (i < n && text[i] !== "\n") i++;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === ":" && /[A-Za-z_]/.test(text[i + 1] ?? "") && text[i - 1] !== ":") {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1))!;
      if (!out.includes(m[0])) out.push(m[0]);
      i += 1 + m[0].length;
    } else i++;
  }
  return out;
}
