"""mycli (Debian's package) with `shop@prod` as its database: its completion refresher
queries information_schema with table_schema = 'shop@prod'; through the rewrite it gets
prod's tables and columns, and completion offers them."""


def _mycli():
    from harness import HarnessError
    try:
        from mycli.sqlcompleter import SQLCompleter
        from mycli.sqlexecute import SQLExecute
        from prompt_toolkit.document import Document
    except ImportError as e:
        raise HarnessError(f"mycli missing ({e}): scripts/install-deps.sh installs it")
    return SQLExecute, SQLCompleter, Document


def completions(completer, Document, text):
    doc = Document(text=text, cursor_position=len(text))
    return {c.text for c in completer.get_completions(doc, None)}


def test_mycli_completes_prod_tables_and_columns(proxy):
    """The refresher's queries (SHOW TABLES, information_schema.columns WHERE table_schema =
    'shop@prod', ROUTINES WHERE ROUTINE_SCHEMA = "shop@prod") run in prod; completion offers
    prod's tables and the columns of orders, and not dev's products.discount."""
    SQLExecute, SQLCompleter, Document = _mycli()
    ex = SQLExecute("shop@prod", "alice", "alice-pw", "127.0.0.1", proxy.port, None, "utf8mb4",
                    False, None, None, None, None, None, None)
    try:
        comp = SQLCompleter(smart_completion=True)
        comp.extend_schemata(ex.dbname)
        comp.set_dbname(ex.dbname)
        comp.extend_database_names(ex.databases())
        comp.extend_relations(ex.tables(), kind="tables")
        columns = list(ex.table_columns())
        assert ("orders", "status") in columns
        assert ("products", "discount") not in columns  # dev has it, prod does not
        comp.extend_columns(columns, kind="tables")
        comp.extend_functions(ex.functions())
        assert {"orders", "customers"} <= completions(comp, Document, "SELECT * FROM ")
        got = completions(comp, Document, "SELECT * FROM orders WHERE ")
        assert {"status", "customer_id"} <= got, sorted(got)[:40]
    finally:
        ex.conn.close()
