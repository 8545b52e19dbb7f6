// editor.ts: the SQL editor (CodeMirror 6: MariaDB highlighting, completion of keywords,
// tables and columns, Ctrl+Enter). Loaded after the login screen, so the first page is small.
import { autocompletion } from "@codemirror/autocomplete";
import { MariaSQL, sql } from "@codemirror/lang-sql";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { basicSetup } from "codemirror";
import type { TableInfo } from "./api";
import { statementAt } from "./sqlsplit";

export type { EditorState };

export class SqlEditor {
  private view: EditorView;
  private conf = new Compartment();
  private schema: Record<string, string[]> = {};
  private defaultTable: string | undefined;

  constructor(parent: HTMLElement, private nonce: string, private onRun: () => void) {
    this.view = new EditorView({ state: this.newState(""), parent });
  }

  private sqlExtension() {
    return sql({ dialect: MariaSQL, schema: this.schema, defaultTable: this.defaultTable, upperCaseKeywords: true });
  }

  newState(doc: string): EditorState {
    return EditorState.create({
      doc,
      extensions: [
        EditorView.cspNonce.of(this.nonce),
        Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (this.onRun(), true) }])),
        basicSetup,
        this.conf.of(this.sqlExtension()),
        autocompletion({ activateOnTyping: true }),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": "SQL editor" }),
      ],
    });
  }

  get state(): EditorState {
    return this.view.state;
  }

  /** Shows a tab's state, with the completion of the current schema. */
  setState(s: EditorState): void {
    this.view.setState(s);
    this.view.dispatch({ effects: this.conf.reconfigure(this.sqlExtension()) });
  }

  /** The tables and columns completion offers; the columns of defaultTable (the table open
   * in the schema browser) are offered without a table name. */
  setSchema(tables: TableInfo[], defaultTable?: string): void {
    this.schema = {};
    for (const t of tables) this.schema[t.name] = t.columns.map((c) => c.name);
    this.defaultTable = defaultTable && this.schema[defaultTable] ? defaultTable : undefined;
    this.view.dispatch({ effects: this.conf.reconfigure(this.sqlExtension()) });
  }

  setText(text: string): void {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text }, selection: { anchor: text.length } });
    this.view.focus();
  }

  focus(): void {
    this.view.focus();
  }

  /** The selection when there is one, else the statement under the cursor. */
  currentSql(): string {
    const sel = this.view.state.selection.main;
    if (!sel.empty) return this.view.state.sliceDoc(sel.from, sel.to).trim();
    return statementAt(this.view.state.doc.toString(), sel.head);
  }

  destroy(): void {
    this.view.destroy();
  }
}
