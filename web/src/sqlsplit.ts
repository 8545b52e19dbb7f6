// sqlsplit.ts: finds the statement under the cursor: the text between top-level ';' (not
// inside quotes, backticks or comments), as the MySQL client splits a script.

export function statementAt(text: string, pos: number): string {
  let start = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === "'" || c === '"' || c === "`") {
      i++;
      while (i < n && text[i] !== c) i += text[i] === "\\" && c !== "`" ? 2 : 1;
      i++;
    } else if (c === "#" || (c === "-" && text[i + 1] === "-" && /\s/.test(text[i + 2] ?? " "))) {
      while (i < n && text[i] !== "\n") i++;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === ";") {
      if (pos <= i) return text.slice(start, i).trim();
      start = i + 1;
      i++;
    } else i++;
  }
  const last = text.slice(start).trim();
  if (last || start === 0) return last;
  // The cursor is after the last ';' with only blanks behind it: the statement before it.
  const prev = text.slice(0, start - 1);
  return statementAt(prev, prev.length);
}
