// envproxy compatibility checks for the Node.js `mariadb` connector (MariaDB's own).
//
//   node mariadb_connector.js PROXY_PORT [CHECK...]
//
// The connector announces itself as a MariaDB client and, with pipelining on (its
// default), sends COM_STMT_PREPARE and then COM_STMT_EXECUTE with statement id 0xFFFFFFFF
// ("the statement just prepared") without waiting for the PREPARE response.
// Prints one JSON object per check: {"check", "ok", "detail", "ms"}. Accounts are those of
// tests/integration/harness.py: alice (dev write, prod read).
'use strict';

const mariadb = require('mariadb');

const CHECK_TIMEOUT_MS = 20000;
const [proxyPort, ...only] = process.argv.slice(2).map(String);
if (!proxyPort) {
  console.error('usage: node mariadb_connector.js PROXY_PORT [CHECK...]');
  process.exit(2);
}

function connect(database, extra) {
  return mariadb.createConnection({
    host: '127.0.0.1', port: Number(proxyPort), user: 'alice', password: 'alice-pw',
    database, connectTimeout: 5000, ...extra,
  });
}

// JSON.stringify that also prints the BigInt values the connector returns for BIGINT.
function show(v) {
  return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x));
}

function assert(cond, what) {
  if (!cond) throw new Error(what);
}

const checks = {
  // execute() pipelines PREPARE + EXECUTE(-1): the proxy maps the id to the new statement.
  async execute_pipelined_in_prod() {
    const conn = await connect('shop@prod');
    try {
      const rows = await conn.execute('SELECT id, name FROM customers WHERE id = ?', [1]);
      assert(rows.length === 1 && Number(rows[0].id) === 1, `rows: ${show(rows)}`);
      // The same text again (the connector's statement cache), then another text.
      const again = await conn.execute('SELECT id, name FROM customers WHERE id = ?', [2]);
      assert(again.length === 1 && Number(again[0].id) === 2, `again: ${show(again)}`);
      const n = await conn.execute('SELECT COUNT(*) AS n FROM customers WHERE id > ?', [0]);
      assert(Number(n[0].n) > 0, `count: ${show(n)}`);
      return `${rows[0].name}, ${again[0].name}`;
    } finally {
      await conn.end();
    }
  },

  // A statement envproxy answers itself (__envs) with a string, a double, a datetime and a
  // NULL bound: the proxy decodes each binary value into a literal of its own reader.
  async execute_virtual_table_with_typed_parameters() {
    const conn = await connect('shop@prod');
    try {
      const rows = await conn.execute(
        'SELECT name FROM __envs.environments WHERE name = ? AND ? > 1 AND ? > \'2000-01-01\' ' +
          'AND ? IS NULL',
        ['prod', 1.5, new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), null]);
      assert(rows.length === 1 && rows[0].name === 'prod', `rows: ${show(rows)}`);
      const none = await conn.execute(
        'SELECT name FROM __envs.environments WHERE name = ? AND ? > 1', ['prod', 0.5]);
      assert(none.length === 0, `none: ${show(none)}`);
      return show(rows);
    } finally {
      await conn.end();
    }
  },

  // A write in prod is refused at PREPARE; the pipelined EXECUTE(-1) then names no statement
  // and must not run an earlier one.
  async execute_refused_write_does_not_run_previous_statement() {
    const conn = await connect('shop@prod');
    try {
      await conn.execute('SELECT ? AS v', [1]);
      let err = null;
      try {
        await conn.execute('UPDATE customers SET name = ? WHERE id = 1', ['x']);
      } catch (e) {
        err = e;
      }
      assert(err && err.errno === 1290, `expected 1290, got ${err && err.errno} ${err && err.message}`);
      const rows = await conn.query('SELECT 1 AS ok');
      assert(Number(rows[0].ok) === 1, 'connection unusable after the refusal');
      return err.message;
    } finally {
      await conn.end();
    }
  },

  // A write where alice may write, through execute(), and its effect read back (in a table
  // of its own: the seed data is shared with the other tests).
  async execute_write_in_dev() {
    const conn = await connect('shop@dev');
    try {
      const tag = `node-mariadb-${process.pid}`;
      await conn.query('CREATE TABLE IF NOT EXISTS node_mariadb_scratch (id INT PRIMARY KEY, v VARCHAR(64))');
      await conn.query('DELETE FROM node_mariadb_scratch');
      const res = await conn.execute('INSERT INTO node_mariadb_scratch VALUES (?, ?)', [1, tag]);
      assert(Number(res.affectedRows) === 1, `affectedRows ${res.affectedRows}`);
      const rows = await conn.execute('SELECT v FROM node_mariadb_scratch WHERE id = ?', [1]);
      assert(rows.length === 1 && rows[0].v === tag, `read back ${show(rows)}`);
      await conn.query('DROP TABLE node_mariadb_scratch');
      return tag;
    } finally {
      await conn.end();
    }
  },
};

function withTimeout(p, ms) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms); }),
  ]);
}

(async () => {
  for (const [name, fn] of Object.entries(checks)) {
    if (only.length && !only.includes(name)) continue;
    const t0 = Date.now();
    let ok = false;
    let detail;
    try {
      detail = await withTimeout(fn(), CHECK_TIMEOUT_MS);
      ok = true;
    } catch (e) {
      detail = `${e && e.code ? e.code + ' ' : ''}${e && e.message ? e.message : e}`;
    }
    console.log(JSON.stringify({ check: name, ok, detail: String(detail), ms: Date.now() - t0 }));
  }
  process.exit(0);
})();
