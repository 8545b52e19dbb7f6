// JSON columns through envproxy: MariaDB's extended type metadata reaches the clients that
// ask for it (the `mariadb` connector and mysql2 then return JSON as objects), through the
// text protocol, the binary protocol, and statement metadata the proxy kept from an earlier
// PREPARE or execution. Usage: node json_columns.js PROXY_PORT. One JSON line per check.
'use strict';
const mariadb = require('mariadb');
const mysql2 = require('mysql2/promise');

const port = Number(process.argv[2]);
const opts = { host: '127.0.0.1', port, user: 'alice', password: 'alice-pw', database: 'shop@prod' };
const SQL = 'SELECT c_json FROM types WHERE c_json IS NOT NULL ORDER BY id LIMIT 1';
const SQL_ARG = 'SELECT c_json FROM types WHERE id = ?';

function report(check, ok, detail) {
  console.log(JSON.stringify({ check, ok, detail: String(detail) }));
}

async function run(check, fn) {
  try {
    const detail = await fn();
    report(check, true, detail);
  } catch (e) {
    report(check, false, e && e.stack ? e.stack : e);
  }
}

function expectObject(v, what) {
  if (v === null || typeof v !== 'object')
    throw new Error(`${what}: got ${typeof v} ${JSON.stringify(v)}, want an object`);
  return `${what}: ${JSON.stringify(v)}`;
}

(async () => {
  let id;
  await run('mariadb_query_json_is_object', async () => {
    const c = await mariadb.createConnection(opts);
    try {
      const rows = await c.query('SELECT id, c_json FROM types WHERE c_json IS NOT NULL ORDER BY id LIMIT 1');
      id = rows[0].id;
      return expectObject(rows[0].c_json, 'query');
    } finally { await c.end(); }
  });
  await run('mariadb_execute_json_is_object_also_from_kept_metadata', async () => {
    const c = await mariadb.createConnection(opts);
    try {
      const out = [];
      for (let i = 0; i < 3; i++) { // later executions may come without metadata from MariaDB
        const rows = await c.execute(SQL_ARG, [id]);
        out.push(expectObject(rows[0].c_json, `execute ${i + 1}`));
      }
      return out.join('; ');
    } finally { await c.end(); }
  });
  await run('mysql2_query_and_execute_json_is_object', async () => {
    const out = [];
    for (let k = 0; k < 2; k++) { // the second connection's PREPARE is answered from the cache
      const c = await mysql2.createConnection(opts);
      try {
        const [q] = await c.query(SQL);
        out.push(expectObject(q[0].c_json, `query ${k + 1}`));
        const [e] = await c.execute(SQL_ARG, [id]);
        out.push(expectObject(e[0].c_json, `execute ${k + 1}`));
      } finally { await c.end(); }
    }
    return out.join('; ');
  });
  await run('mariadb_local_answers_carry_empty_extended_metadata', async () => {
    // Result sets the proxy builds itself, text and binary, for a client with the capability.
    const c = await mariadb.createConnection(opts);
    try {
      const q = await c.query('SELECT name FROM __envs.environments ORDER BY name');
      const e = await c.execute('SELECT name FROM __envs.environments WHERE name = ?', ['prod']);
      const v = await c.query('SELECT @@version_comment AS v');
      const got = [q.map((r) => r.name).join(','), e[0].name, /envproxy/.test(v[0].v)];
      if (got[0] !== 'dev,prod' || got[1] !== 'prod' || !got[2])
        throw new Error(`got ${JSON.stringify(got)}`);
      return JSON.stringify(got);
    } finally { await c.end(); }
  });
})();
