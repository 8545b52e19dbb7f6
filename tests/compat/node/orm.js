// Node `mysql`, TypeORM, Kysely and Drizzle through envproxy, each with `shop@prod` as the
// database in its connection settings. Usage: node orm.js PROXY_PORT. One JSON line per
// check: {"check": NAME, "ok": true|false, "detail": "..."}.
'use strict';
require('reflect-metadata');
const mysql = require('mysql');
const mysql2 = require('mysql2');
const typeorm = require('typeorm');
const { Kysely, MysqlDialect, sql } = require('kysely');
const { drizzle } = require('drizzle-orm/mysql2');
const { mysqlTable, int, json, varchar } = require('drizzle-orm/mysql-core');
const { eq } = require('drizzle-orm');

const port = Number(process.argv[2]);
const base = { host: '127.0.0.1', port, user: 'alice', password: 'alice-pw' };

function report(check, ok, detail) {
  console.log(JSON.stringify({ check, ok, detail: String(detail) }));
}

async function run(check, fn) {
  try {
    report(check, true, await fn());
  } catch (e) {
    report(check, false, e && e.stack ? e.stack : e);
  }
}

function expect(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want))
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  return `${what}: ${JSON.stringify(got)}`;
}

// ---- mysql (mysqljs)
function q(conn, text, values) {
  return new Promise((resolve, reject) =>
    conn.query(text, values, (err, rows) => (err ? reject(err) : resolve(rows))));
}

async function withMysql(database, fn) {
  const conn = mysql.createConnection({ ...base, database });
  try {
    return await fn(conn);
  } finally {
    conn.destroy();
  }
}

async function main() {
  await run('mysql_read_prod', () => withMysql('shop@prod', async (c) => {
    const rows = await q(c, 'SELECT status FROM orders WHERE id = ?', [3]);
    return expect(rows[0].status, 'shipped', 'prod order 3');
  }));
  await run('mysql_write_refused_1290', () => withMysql('shop@prod', async (c) => {
    try {
      await q(c, "UPDATE orders SET status = 'x' WHERE id = 3");
    } catch (e) {
      return expect(e.errno, 1290, 'errno');
    }
    throw new Error('the UPDATE was not refused');
  }));
  await run('mysql_transaction_then_use_prod', () => withMysql('shop', async (c) => {
    await new Promise((res, rej) => c.beginTransaction((e) => (e ? rej(e) : res())));
    await q(c, 'USE `shop@prod`');
    const rows = await q(c, 'SELECT COUNT(*) AS n FROM orders WHERE id = 12');
    await q(c, 'COMMIT');
    return expect(rows[0].n, 1, 'prod-only order 12');
  }));
  await run('mysql_schema_names', () => withMysql('shop', async (c) => {
    const rows = await q(c, 'SHOW TABLES FROM `billing@prod`');
    return expect(rows.map((r) => Object.values(r)[0]), ['invoices'], 'billing@prod tables');
  }));

  // ---- TypeORM (its mysql driver, on mysql2 or mysql)
  await run('typeorm_introspection_of_prod', async () => {
    const ds = new typeorm.DataSource({ type: 'mariadb', ...base, username: 'alice',
                                        database: 'shop@prod', logging: false });
    await ds.initialize();
    try {
      const qr = ds.createQueryRunner();
      const out = [];
      out.push(expect(await qr.hasTable('orders'), true, 'hasTable(orders)'));
      out.push(expect(await qr.hasTable('invoices'), false, 'hasTable(invoices)'));
      out.push(expect(await qr.hasColumn('products', 'discount'), false, 'prod products.discount'));
      const t = await qr.getTable('orders');
      out.push(expect(t.foreignKeys.length, 1, 'orders foreign keys'));
      const rows = await ds.query('SELECT status FROM orders WHERE id = ?', [3]);
      out.push(expect(rows[0].status, 'shipped', 'query'));
      await qr.release();
      return out.join('; ');
    } finally {
      await ds.destroy();
    }
  });
  await run('typeorm_write_refused_1290', async () => {
    const ds = new typeorm.DataSource({ type: 'mariadb', ...base, username: 'alice',
                                        database: 'shop@prod', logging: false });
    await ds.initialize();
    try {
      await ds.query("UPDATE orders SET status = 'x' WHERE id = 3");
    } catch (e) {
      return expect(e.errno, 1290, 'errno');
    } finally {
      await ds.destroy();
    }
    throw new Error('the UPDATE was not refused');
  });

  // ---- Kysely (MysqlDialect on a mysql2 pool)
  await run('kysely_query_introspection_and_json', async () => {
    const db = new Kysely({ dialect: new MysqlDialect({
      pool: mysql2.createPool({ ...base, database: 'shop@prod', connectionLimit: 2 }) }) });
    try {
      const out = [];
      const r = await db.selectFrom('orders').select('status').where('id', '=', 3).executeTakeFirst();
      out.push(expect(r.status, 'shipped', 'select'));
      const tables = (await db.introspection.getTables()).map((t) => t.name).sort();
      out.push(expect(tables.includes('orders') && !tables.includes('invoices'), true,
                      'introspection lists prod shop'));
      const j = await db.selectFrom('types').select('c_json').where('c_json', 'is not', null)
        .orderBy('id').limit(1).executeTakeFirst();
      out.push(expect(typeof j.c_json, 'object', 'JSON column'));
      const n = await sql`SELECT COUNT(*) AS n FROM ${sql.raw('`billing@prod`.invoices')}`.execute(db);
      out.push(expect(Number(n.rows[0].n) > 0, true, '`billing@prod`.invoices'));
      return out.join('; ');
    } finally {
      await db.destroy();
    }
  });

  // ---- Drizzle (mysql2 driver)
  await run('drizzle_select_and_json', async () => {
    const conn = mysql2.createPool({ ...base, database: 'shop@prod', connectionLimit: 2 });
    try {
      const db = drizzle(conn);
      const orders = mysqlTable('orders', { id: int('id').primaryKey(), status: varchar('status', { length: 20 }) });
      const types = mysqlTable('types', { id: int('id').primaryKey(), c_json: json('c_json') });
      const out = [];
      const o = await db.select().from(orders).where(eq(orders.id, 3));
      out.push(expect(o[0].status, 'shipped', 'select'));
      const t = await db.select({ j: types.c_json }).from(types).orderBy(types.id).limit(1);
      out.push(expect(typeof t[0].j, 'object', 'JSON column'));
      const [raw] = await conn.promise().query('SELECT c_json FROM types WHERE c_json IS NOT NULL LIMIT 1');
      out.push(expect(typeof raw[0].c_json, 'object', 'JSON column through the driver'));
      return out.join('; ');
    } finally {
      await conn.promise().end();
    }
  });
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
