// envproxy compatibility checks for the Node.js driver mysql2.
//
//   node compat.js PROXY_PORT DIRECT_PROD_PORT [CHECK...]
//
// PROXY_PORT: envproxy on 127.0.0.1; DIRECT_PROD_PORT: the prod backend itself, used
// as the reference for values read through the binary protocol (account app /
// app-secret). With CHECK names, only those run.
//
// Prints one JSON object per check on its own line: {"check", "ok", "detail", "ms"}.
// Each check has its own time limit, so one that hangs fails and the others still run.
// The accounts are those of tests/integration/harness.py: alice (dev write, prod read),
// bob (prod read), carol (dev read).
'use strict';

const mysql = require('mysql2/promise');

const HOST = '127.0.0.1';
const CHECK_TIMEOUT_MS = 25000;
const BIG = 17 * 1024 * 1024 + 123; // over one 16 MiB packet

const [proxyPort, directProdPort, ...only] = process.argv.slice(2).map(String);
if (!proxyPort || !directProdPort) {
  console.error('usage: node compat.js PROXY_PORT DIRECT_PROD_PORT [CHECK...]');
  process.exit(2);
}

const BASE = {
  host: HOST,
  connectTimeout: 5000,
  charset: 'UTF8MB4_GENERAL_CI',
  dateStrings: true,
  supportBigNumbers: true,
  bigNumberStrings: true,
  jsonStrings: true,
};

function connect(opts) {
  return mysql.createConnection({ ...BASE, port: Number(proxyPort), ...opts });
}

function alice(database, extra) {
  return connect({ user: 'alice', password: 'alice-pw', database, ...extra });
}

function direct(extra) {
  return mysql.createConnection({
    ...BASE, port: Number(directProdPort), user: 'app', password: 'app-secret',
    database: 'shop', ...extra,
  });
}

class Failed extends Error {}

function expect(cond, message) {
  if (!cond) throw new Failed(message);
}

function expectEq(want, got, what) {
  const w = JSON.stringify(want);
  const g = JSON.stringify(got);
  if (w !== g) throw new Failed(`${what}: expected ${w}, got ${g}`);
}

// Resolves to the error the promise rejects with; fails if it resolves.
async function rejection(promise, what) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Failed(`${what} did not fail`);
}

function describe(err) {
  if (err && err.errno !== undefined) {
    return `errno=${err.errno} code=${err.code} sqlState=${err.sqlState}: ${err.sqlMessage || err.message}`;
  }
  return String(err && err.stack ? err.message : err);
}

async function closeQuietly(conn) {
  if (!conn) return;
  try {
    await Promise.race([conn.end(), new Promise((r) => setTimeout(r, 2000))]);
  } catch (_) {
    // already closed
  }
  try {
    conn.destroy();
  } catch (_) {
    // already closed
  }
}

// Runs fn(track) where track(conn) registers a connection to close afterwards.
async function withConnections(fn) {
  const conns = [];
  const track = (c) => {
    conns.push(c);
    return c;
  };
  try {
    return await fn(track);
  } finally {
    for (const c of conns) await closeQuietly(c);
  }
}

function plain(value) {
  // Buffers as hex, everything else as JSON would show it.
  return JSON.parse(JSON.stringify(value, (k, v) => {
    if (v && v.type === 'Buffer' && Array.isArray(v.data)) {
      return 'hex:' + Buffer.from(v.data).toString('hex');
    }
    return v;
  }));
}

function fieldInfo(fields) {
  return fields.map((f) => ({
    name: f.name,
    columnType: f.columnType,
    characterSet: f.characterSet,
    columnLength: f.columnLength,
    flags: f.flags,
    decimals: f.decimals,
  }));
}

const checks = {};

// ------------------------------------------------------------- text protocol

checks.query_with_placeholders = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  const [rows] = await c.query('SELECT ? AS n, ? AS s, ? AS z, ? AS d',
    [5, "Zoë 東京 🚀 O'Brien", null, '12.50']);
  expectEq([{ n: 5, s: "Zoë 東京 🚀 O'Brien", z: null, d: '12.50' }], rows, 'query with values');
  const [st] = await c.query('SELECT status FROM orders WHERE id = ?', [3]);
  expectEq([{ status: 'pending' }], st, "dev's order 3");
  return 'client-side placeholders in dev';
});

// ------------------------------------------------------------- binary protocol

checks.execute_parameter_types = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  const blob = Buffer.from([0, 0xff, 1, 2, 0x27, 0x5c, 0]);
  const [rows] = await c.execute(
    'SELECT ? AS i, ? AS neg, ? AS big, ? AS s, ? AS z, CAST(? AS DECIMAL(20,6)) AS d, ' +
    'CAST(? AS DATETIME(3)) AS ts, ? AS b, ? AS f, ? AS t, ? AS e',
    [42, -2147483648, '9223372036854775807', 'Zoë 東京 🚀 \\ "q"', null,
      '-12345678901234.567890', new Date(Date.UTC(2024, 1, 29, 13, 45, 59, 123)), blob,
      2.5, true, ''],
  );
  const r = rows[0];
  expectEq(42, Number(r.i), 'int');
  expectEq(-2147483648, Number(r.neg), 'negative int');
  expectEq('9223372036854775807', String(r.big), 'bigint as string');
  expectEq('Zoë 東京 🚀 \\ "q"', String(r.s), 'unicode string');
  expectEq(null, r.z, 'null');
  expectEq('-12345678901234.567890', r.d, 'decimal');
  expect(String(r.ts).startsWith('2024-02-29'), `datetime: ${r.ts}`);
  expectEq(blob.toString('hex'), Buffer.from(r.b).toString('hex'), 'bytes');
  expectEq(2.5, Number(r.f), 'double');
  expectEq(1, Number(r.t), 'boolean');
  expectEq('', String(r.e), 'empty string');
  return '11 parameters of 9 types through COM_STMT_EXECUTE';
});

async function typesRows(conn) {
  const [rows, fields] = await conn.execute('SELECT * FROM shop.types WHERE id >= ? ORDER BY id', [0]);
  return { rows: plain(rows), fields: fieldInfo(fields) };
}

checks.execute_reads_every_column_type = () => withConnections(async (track) => {
  const want = await typesRows(track(await direct()));
  const got = await typesRows(track(await alice('shop@prod')));
  expectEq(want.fields, got.fields, 'column definitions');
  expect(want.rows.length === 3, `reference rows: ${want.rows.length}`);
  for (let i = 0; i < want.rows.length; i++) {
    for (const k of Object.keys(want.rows[i])) {
      expectEq(want.rows[i][k], got.rows[i] && got.rows[i][k], `row ${i + 1} column ${k}`);
    }
  }
  return `${want.fields.length} columns x 3 rows equal to the backend's`;
});

// The type of a `?` column is known only at execution: each execution's own column
// definitions must reach the client.
checks.execute_result_type_follows_the_parameter = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  // Repeated types too: a server that caches metadata may then send no column
  // definitions, and the client still needs the execution's, not PREPARE's (NULL type).
  const values = [7, 8, 9, 'text', 'more', null, 2.5, 3.5, 'Zoë', 10];
  const seen = [];
  for (const v of values) {
    const [rows] = await c.execute('SELECT ? AS v', [v]);
    const x = rows[0].v;
    seen.push(typeof x === 'string' && /^[0-9.]+$/.test(x) ? Number(x) : x);
  }
  expectEq(values, seen, 'values of SELECT ? executed ten times');
  return 'ten executions of SELECT ? with repeated and changing types';
});

checks.execute_same_statement_many_times = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  for (let i = 0; i < 300; i++) {
    const [rows] = await c.execute('SELECT ? * 2 AS v, CONCAT(\'n\', ?) AS s', [i, String(i)]);
    expectEq([{ v: String(i * 2), s: `n${i}` }], rows.map((r) => ({ v: String(r.v), s: r.s })),
      `execution ${i}`);
  }
  const [[again]] = await c.query('SELECT 1 AS one');
  expectEq({ one: 1 }, again, 'text query after the executions');
  return '300 executions of one cached statement';
});

checks.statement_cache_eviction_keeps_the_server_bounded = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev', { maxPreparedStatements: 5 }));
  for (let i = 0; i < 40; i++) {
    const [rows] = await c.execute(`SELECT ${i} + ? AS v`, [1000]);
    expectEq(String(1000 + i), String(rows[0].v), `statement ${i}`);
  }
  c.unprepare('SELECT 39 + ? AS v');
  const [status] = await c.query("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'");
  const open = Number(status[0].Value);
  // The proxy keeps one server statement per text on the backend connection that ran it
  // (sequential executes share one connection); other sessions may add a few.
  expect(open <= 50, `dev holds ${open} prepared statements for 40 texts`);
  // A statement the driver closed and prepares again still runs.
  const [again] = await c.execute('SELECT 39 + ? AS v', [1]);
  expectEq('40', String(again[0].v), 'statement 39 prepared again');
  return `40 statements with a cache of 5; ${open} open on the dev server afterwards`;
});

checks.execute_with_env_hint = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  const [rows] = await c.execute('/* env=prod */ SELECT status FROM orders WHERE id = ?', [3]);
  expectEq([{ status: 'shipped' }], rows, 'order 3 through a prepared statement with env=prod');
  const [dev] = await c.execute('SELECT status FROM orders WHERE id = ?', [3]);
  expectEq([{ status: 'pending' }], dev, 'order 3 without the hint (dev)');
  return 'the hint routes a prepared statement';
});

checks.prepare_of_write_refused_in_prod_with_1290 = () => withConnections(async (track) => {
  const c = track(await alice('shop@prod'));
  const err = await rejection(c.prepare('UPDATE products SET stock = ? WHERE id = ?'),
    'PREPARE of an UPDATE in prod');
  expectEq(1290, err.errno, `errno (${describe(err)})`);
  const err2 = await rejection(c.execute('DELETE FROM orders WHERE id = ?', [1]),
    'execute of a DELETE in prod');
  expectEq(1290, err2.errno, `errno of execute (${describe(err2)})`);
  const [[n]] = await c.execute('SELECT COUNT(*) AS n FROM orders WHERE id >= ?', [0]);
  expectEq('11', String(n.n), "prod's orders after the refusals");
  return 'refused at PREPARE with 1290; the connection still works';
});

// ------------------------------------------------------------- COM_CHANGE_USER

checks.change_user_to_another_account = () => withConnections(async (track) => {
  const c = track(await connect({ user: 'alice', password: 'alice-pw' }));
  await c.query('SET @compat_var = 1');
  await c.execute('SELECT ? AS x', [1]);
  await c.changeUser({ user: 'bob', password: 'bob-pw' });
  const [[r]] = await c.query(
    'SELECT DATABASE() AS db, @compat_var AS v, (SELECT status FROM orders WHERE id = 3) AS st');
  expectEq({ db: 'shop', v: null, st: 'shipped' }, r, "bob's session (default env prod)");
  const err = await rejection(c.query('USE shop@dev'), 'bob switching to dev');
  expectEq(1044, err.errno, `bob has no dev grant (${describe(err)})`);
  const [ex] = await c.execute('SELECT ? + 1 AS v', [1]);
  expectEq('2', String(ex[0].v), 'prepared statement after the change');
  return 'alice became bob: prod, fresh session variables, bob\'s grants';
});

checks.change_user_with_database_target = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  await c.changeUser({ user: 'alice', password: 'alice-pw', database: 'shop@prod' });
  const [[r]] = await c.query('SELECT DATABASE() AS db, status FROM orders WHERE id = 3');
  expectEq({ db: 'shop', status: 'shipped' }, r, 'after changeUser to shop@prod');
  return 'changeUser with database shop@prod';
});

checks.change_user_to_env_without_grant_gets_1044 = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  // mysql2 keeps the connection's database (shop@dev) when none is given.
  const err = await rejection(c.changeUser({ user: 'bob', password: 'bob-pw' }),
    'changeUser to bob with database shop@dev');
  expectEq(1044, err.errno, describe(err));
  return describe(err);
});

checks.change_user_wrong_password_gets_1045 = () => withConnections(async (track) => {
  const c = track(await connect({ user: 'alice', password: 'alice-pw' }));
  const err = await rejection(c.changeUser({ user: 'bob', password: 'wrong' }),
    'changeUser with a wrong password');
  expectEq(1045, err.errno, describe(err));
  return describe(err);
});

// ------------------------------------------------------------- many commands at once

checks.queued_commands_run_in_order = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  const pending = [];
  for (let i = 0; i < 100; i++) {
    pending.push(i % 2
      ? c.query('SELECT ? AS i', [i])
      : c.execute('SELECT ? AS i', [i]));
  }
  const results = await Promise.all(pending);
  results.forEach(([rows], i) => expectEq(String(i), String(rows[0].i), `result ${i}`));
  return '100 queued query/execute commands answered in order';
});

// ------------------------------------------------------------- packets over 16 MiB

checks.query_value_over_16_mib = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  const payload = 'b'.repeat(BIG);
  const [[r]] = await c.query('SELECT LENGTH(?) AS n, RIGHT(?, 3) AS t', [payload, payload + 'xyz']);
  expectEq({ n: String(BIG), t: 'xyz' }, { n: String(r.n), t: r.t }, 'statement over 16 MiB');
  const [[big]] = await c.query(`SELECT REPEAT('a', ${BIG}) AS v, 'end' AS e`);
  expect(big.v.length === BIG && big.e === 'end', `result row over 16 MiB: ${big.v.length}`);
  return `a ${BIG}-byte value each way`;
});

checks.execute_value_over_16_mib = () => withConnections(async (track) => {
  const c = track(await alice('shop@dev'));
  const payload = 'c'.repeat(BIG);
  const [[r]] = await c.execute('SELECT LENGTH(?) AS n, RIGHT(?, 3) AS t', [payload, payload + 'xyz']);
  expectEq({ n: String(BIG), t: 'xyz' }, { n: String(r.n), t: r.t }, 'COM_STMT_EXECUTE over 16 MiB');
  const [[big]] = await c.execute('SELECT REPEAT(?, ?) AS v', ['d', BIG]);
  expect(big.v.length === BIG, `binary result row over 16 MiB: ${big.v.length}`);
  return `a ${BIG}-byte parameter and a ${BIG}-byte binary row`;
});

// ------------------------------------------------------------- errors

checks.error_1044_environment_without_grant = async () => {
  const err = await rejection(connect({ user: 'carol', password: 'carol-pw', database: '@prod' }),
    'carol connecting to prod');
  expectEq(1044, err.errno, describe(err));
  expectEq('ER_DBACCESS_DENIED_ERROR', err.code, 'error code name');
  return describe(err);
};

checks.error_1045_wrong_password = async () => {
  const err = await rejection(connect({ user: 'alice', password: 'nope', database: 'shop@dev' }),
    'a wrong password');
  expectEq(1045, err.errno, describe(err));
  expectEq('28000', err.sqlState, 'SQLSTATE');
  return describe(err);
};

checks.error_1290_write_in_prod = () => withConnections(async (track) => {
  const c = track(await alice('shop@prod'));
  const err = await rejection(c.query('DELETE FROM orders WHERE id = ?', [1]), 'DELETE in prod');
  expectEq(1290, err.errno, describe(err));
  const [[n]] = await c.query('SELECT COUNT(*) AS n FROM orders');
  expectEq('11', String(n.n), "prod's orders after the refusal");
  return describe(err);
});

// ------------------------------------------------------------- runner

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Failed(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}

async function main() {
  for (const [name, fn] of Object.entries(checks)) {
    if (only.length && !only.includes(name)) continue;
    const start = Date.now();
    let ok = false;
    let detail;
    try {
      detail = await withTimeout(Promise.resolve().then(fn), CHECK_TIMEOUT_MS);
      ok = true;
    } catch (err) {
      detail = err instanceof Failed ? err.message : describe(err);
    }
    process.stdout.write(JSON.stringify({ check: name, ok, detail, ms: Date.now() - start }) + '\n');
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
