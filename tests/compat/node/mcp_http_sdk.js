// envproxy's MCP over Streamable HTTP driven by the official MCP TypeScript SDK client
// (@modelcontextprotocol/sdk, StreamableHTTPClientTransport).
//
//   node mcp_http_sdk.js HTTP_PORT API_TOKEN
//
// Prints one JSON object per check: {"check", "ok", "detail", "ms"}. The token is an API
// token of alice (dev write, prod read); a named query `sdk_status` (int :id) exists.
'use strict';

const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');

const CHECK_TIMEOUT_MS = 30000;
const [httpPort, token] = process.argv.slice(2).map(String);
if (!httpPort || !token) {
  console.error('usage: node mcp_http_sdk.js HTTP_PORT API_TOKEN');
  process.exit(2);
}

function assert(cond, what) {
  if (!cond) throw new Error(what);
}

async function open() {
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${httpPort}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'envproxy-compat', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

async function close({ client, transport }) {
  await transport.terminateSession();
  await client.close();
}

function result(r) {
  return { isError: !!r.isError, body: JSON.parse(r.content[0].text) };
}

const checks = {
  async initialize_and_list_tools() {
    const s = await open();
    try {
      assert(s.transport.sessionId && s.transport.sessionId.length === 64, 'no session id');
      const { tools } = await s.client.listTools();
      const names = tools.map((t) => t.name);
      for (const n of ['list_environments', 'execute_query', 'compare_query', 'nq_sdk_status'])
        assert(names.includes(n), `missing tool ${n}: ${names}`);
      const nq = tools.find((t) => t.name === 'nq_sdk_status');
      assert(nq.inputSchema.properties.id.type === 'integer', 'nq input schema');
      return names.length;
    } finally {
      await close(s);
    }
  },

  async calls_in_dev_and_prod() {
    const s = await open();
    try {
      const dev = result(await s.client.callTool({ name: 'execute_query', arguments: {
        environment: 'dev', database: 'shop', sql: 'SELECT status FROM orders WHERE id = 3' } }));
      const prod = result(await s.client.callTool({ name: 'execute_query', arguments: {
        environment: 'prod', database: 'shop', sql: 'SELECT status FROM orders WHERE id = 3' } }));
      assert(!dev.isError && dev.body.rows[0][0] === 'pending', JSON.stringify(dev));
      assert(!prod.isError && prod.body.rows[0][0] === 'shipped', JSON.stringify(prod));
      const nq = result(await s.client.callTool({ name: 'nq_sdk_status', arguments: {
        environment: 'prod', id: 3 } }));
      assert(!nq.isError && nq.body.rows[0][0] === 'shipped', JSON.stringify(nq));
      return 'ok';
    } finally {
      await close(s);
    }
  },

  async refused_write_in_prod() {
    const s = await open();
    try {
      const r = result(await s.client.callTool({ name: 'execute_query', arguments: {
        environment: 'prod', database: 'shop', sql: 'DELETE FROM orders' } }));
      assert(r.isError && r.body.error.code === 1290, JSON.stringify(r));
      return r.body.error.message;
    } finally {
      await close(s);
    }
  },

  async cancellation_stops_the_statement() {
    const s = await open();
    try {
      const ac = new AbortController();
      const t0 = Date.now();
      const call = s.client.callTool({ name: 'execute_query', arguments: {
        environment: 'dev', sql: 'SELECT SLEEP(20) AS s' } }, undefined, { signal: ac.signal });
      setTimeout(() => ac.abort('test'), 1500);
      let aborted = false;
      try {
        await call;
      } catch (e) {
        aborted = true;
      }
      assert(aborted, 'the call was not aborted');
      // The session goes on, and its connection is free again well before SLEEP(20) ends.
      const r = result(await s.client.callTool({ name: 'execute_query', arguments: {
        environment: 'dev', sql: 'SELECT 1 AS one' } }));
      const ms = Date.now() - t0;
      assert(!r.isError && ms < 12000, `next call after ${ms} ms: ${JSON.stringify(r)}`);
      return ms;
    } finally {
      await close(s);
    }
  },
};

(async () => {
  for (const [name, fn] of Object.entries(checks)) {
    const t0 = Date.now();
    let ok = false;
    let detail;
    try {
      detail = await Promise.race([
        fn(),
        new Promise((_, rej) => setTimeout(() => rej(new Error('timed out')), CHECK_TIMEOUT_MS)),
      ]);
      ok = true;
    } catch (e) {
      detail = String(e && e.stack ? e.stack : e);
    }
    console.log(JSON.stringify({ check: name, ok, detail, ms: Date.now() - t0 }));
  }
  process.exit(0);
})();
