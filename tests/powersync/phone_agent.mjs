// A phone for the tests and for `lestash-bench phone`: the PowerSync client
// core (@powersync/node, the same Rust core the Flutter SDK runs) on its own
// SQLite file, driven over a unix socket by the C++ side
// (tests/support/phone_rig.*), one JSON request per line, one JSON answer
// per line: {"id": N, "ok": true, ...} or {"id": N, "ok": false, "error": "..."}.
//
//   node phone_agent.mjs --socket PATH --db-dir DIR --schema SCHEMA.json
//                        --endpoint URL --token JWT --api-token TOKEN [--service-root DIR]
//                        [--upload-url URL --token-url URL]
//
// With --upload-url the phone writes: its connector is the one docs/mobile.md
// gives in Dart, written in JavaScript: fetchCredentials asks lestash-endpoint
// (--token-url) for a token with the device credential that `pair` got, and
// uploadData POSTs each CRUD transaction to --upload-url and acts on the
// answer by the table of docs/mobile.md. Tables track the previous _rev.
//
// SCHEMA.json is `scripts/powersync-dart-schema --json`: the phone's tables
// and column types, generated like the Dart schema a Flutter app uses.
// Requests:
//   connect {}                        connect and wait for the first full sync (once)
//   dump {tables: {name: [columns]}}  every row of each table, ordered by id,
//                                     each value as [sqlite typeof, text]
//   wait {sql, params, timeout_ms}    until the query's first value is 1
//   http {method, path, body}         a request to the service with the API token
//   service_dart_schema {sync_config} the Dart schema PowerSync's own generator
//                                     derives from the live source schema
//   check_id_vectors {path}           the id rule of docs/mobile.md, written as a
//                                     phone would, against config/powersync/id-vectors.json
//   pair {code}                       exchange a pairing code for the device credential
//   offline {} / online {}            disconnect / connect again (uploads resume)
//   write {statements: [[sql, params], ...]}  one local write transaction
//   wait_uploaded {timeout_ms}        until the upload queue is empty
//   uploads {}                        every answer the endpoint gave uploadData
//   query {sql, params}               rows of a local query
//   close {}                          disconnect, close the database, exit
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { PowerSyncDatabase, Schema, Table, column } from '@powersync/node';

const { values: args } = parseArgs({
  options: {
    socket: { type: 'string' },
    'db-dir': { type: 'string' },
    schema: { type: 'string' },
    endpoint: { type: 'string' },
    token: { type: 'string' },
    'api-token': { type: 'string' },
    'service-root': { type: 'string' },
    'upload-url': { type: 'string' },
    'token-url': { type: 'string' }
  }
});
for (const required of ['socket', 'db-dir', 'schema', 'endpoint', 'token', 'api-token'])
  if (!args[required]) throw new Error(`phone_agent.mjs: --${required} is required`);

const generated = JSON.parse(readFileSync(args.schema, 'utf8'));
const schema = new Schema(
  Object.fromEntries(
    Object.entries(generated.tables).map(([name, columns]) => [
      name,
      new Table(
        Object.fromEntries(Object.entries(columns).map(([c, type]) => [c, column[type]])),
        // The _rev the phone saw goes up with each PATCH and DELETE: the endpoint's conflict base.
        args['upload-url'] ? { trackPrevious: { columns: ['_rev'] } } : {}
      )
    ])
  )
);
const tableNames = Object.keys(generated.tables);

const dbFile = 'phone.db';
for (const suffix of ['', '-wal', '-shm']) rmSync(`${args['db-dir']}/${dbFile}${suffix}`, { force: true });
const db = new PowerSyncDatabase({
  schema,
  database: { dbFilename: dbFile, dbLocation: args['db-dir'], implementation: { type: 'better-sqlite3' } }
});

// The device credential from `pair`; without one the phone reads with --token.
let credential = null;
const uploads = [];
const rejected = [];

// {status, body}: the answer's JSON, or its text when it is not JSON.
async function request(method, url, token, body) {
  const res = await fetch(url, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json ?? text };
}

let cachedToken = null;
const connector = {
  async fetchCredentials() {
    if (!credential) return { endpoint: args.endpoint, token: args.token };
    const { status, body } = await request('POST', `${args['token-url']}/api/token`, credential, {});
    if (status !== 200) throw new Error(`token endpoint: ${status} ${JSON.stringify(body)}`);
    cachedToken = body.token;
    return { endpoint: args.endpoint, token: body.token };
  },
  // docs/mobile.md, "The connector's rule".
  async uploadData(database) {
    const tx = await database.getNextCrudTransaction();
    if (!tx) return;
    if (!cachedToken) await connector.fetchCredentials();
    const crud = { transaction_id: tx.transactionId, crud: tx.crud.map((op) => op.toJSON()) };
    const { status, body } = await request('POST', `${args['upload-url']}/api/upload`, cachedToken, crud);
    uploads.push({ status, body, transaction_id: tx.transactionId });
    if (status === 200) return tx.complete(); // applied, or kept as a dead letter upstream
    if (status === 401) {
      cachedToken = null; // a fresh token on the next attempt
      throw new Error(`upload refused (401): ${JSON.stringify(body)}`);
    }
    if (status >= 400 && status < 500) {
      // The request itself is wrong: keep it on the phone where the owner can see it, move on.
      rejected.push({ status, body, request: crud });
      return tx.complete();
    }
    throw new Error(`upload failed (${status}): ${JSON.stringify(body)}`); // the SDK retries
  }
};

// Waiters re-check their query whenever the client has applied a change.
let wakeWaiters = () => {};
let changed = new Promise((resolve) => (wakeWaiters = resolve));
function notifyChange() {
  const wake = wakeWaiters;
  changed = new Promise((resolve) => (wakeWaiters = resolve));
  wake();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function firstValue(sql, params) {
  const row = await db.getOptional(sql, params ?? []);
  return row == null ? null : Object.values(row)[0];
}

let connected = false;
const connectOptions = { retryDelayMs: 300, crudUploadThrottleMs: 20 };

const handlers = {
  async connect() {
    const t0 = performance.now();
    if (connected) return { ms: 0 };
    connected = true;
    await db.init();
    db.onChange({ onChange: notifyChange }, { tables: tableNames, throttleMs: 0 });
    await db.connect(connector, connectOptions);
    await db.waitForFirstSync();
    return { ms: performance.now() - t0 };
  },

  async pair({ code }) {
    const { status, body } = await request('POST', `${args['token-url']}/api/pair`, null, { code });
    if (status !== 200) throw new Error(`pairing refused: ${status} ${JSON.stringify(body)}`);
    credential = body.credential;
    cachedToken = null;
    return { device_id: body.device_id };
  },

  async offline() {
    await db.disconnect();
    return {};
  },

  async online() {
    await db.connect(connector, connectOptions);
    return {};
  },

  async write({ statements }) {
    await db.writeTransaction(async (tx) => {
      for (const [sql, params] of statements) await tx.execute(sql, params ?? []);
    });
    return {};
  },

  async wait_uploaded({ timeout_ms }) {
    const t0 = performance.now();
    while ((await db.getUploadQueueStats()).count > 0) {
      if (performance.now() - t0 > (timeout_ms ?? 30000))
        throw new Error(`uploads still queued after ${timeout_ms} ms: ${JSON.stringify(uploads.slice(-3))}`);
      await sleep(25);
    }
    return { ms: performance.now() - t0 };
  },

  async uploads() {
    return { uploads, rejected };
  },

  async query({ sql, params }) {
    return { rows: await db.getAll(sql, params ?? []) };
  },

  async dump({ tables }) {
    const out = {};
    for (const [table, columns] of Object.entries(tables)) {
      // typeof and the value as text: integers beyond 2^53 and the exact
      // storage class survive the trip to JSON.
      const select = columns
        .map((c) => `typeof("${c}"), CASE typeof("${c}") WHEN 'integer' THEN CAST("${c}" AS TEXT) ` +
          `WHEN 'real' THEN printf('%!.17g', "${c}") WHEN 'blob' THEN hex("${c}") ELSE "${c}" END`)
        .join(', ');
      const rows = await db.getAll(`SELECT ${select} FROM "${table}" ORDER BY id`);
      out[table] = rows.map((r) => {
        const v = Object.values(r);
        return columns.map((_, i) => [v[2 * i], v[2 * i + 1]]);
      });
    }
    return { tables: out };
  },

  async wait({ sql, params, timeout_ms }) {
    const t0 = performance.now();
    const deadline = t0 + (timeout_ms ?? 30000);
    for (;;) {
      const next = changed;
      if ((await firstValue(sql, params)) === 1) return { ms: performance.now() - t0 };
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeout_ms} ms waiting for: ${sql} ${JSON.stringify(params)}`);
      // A change event, or a re-check now and then in case one was missed.
      await Promise.race([next, sleep(Math.min(left, 100))]);
    }
  },

  async http({ method, path, body }) {
    return request(method ?? 'POST', args.endpoint + path, args['api-token'], body);
  },

  async service_dart_schema({ sync_config }) {
    if (!args['service-root']) throw new Error('--service-root is needed for service_dart_schema');
    const rules = await import(`${args['service-root']}/packages/sync-rules/dist/index.js`);
    const { body } = await handlers.http({ method: 'POST', path: '/api/admin/v1/schema', body: {} });
    const source = new rules.StaticSchema(body.data.connections);
    const parsed = rules.SqlSyncRules.fromYaml(sync_config, { defaultSchema: 'public', schema: source, throwOnError: true });
    return { dart: new rules.DartSchemaGenerator().generate(parsed.config, source) };
  },

  async check_id_vectors({ path }) {
    const vectors = JSON.parse(readFileSync(path, 'utf8'));
    const namespace = Buffer.from(vectors.namespace.replaceAll('-', ''), 'hex');
    // The name as bytes: UTF-8, except text-hex key values (text that is
    // not UTF-8 or holds a NUL, which only desktops produce): their raw bytes.
    const nameBasedUuid = (name) => {
      const bytes = Buffer.isBuffer(name) ? name : Buffer.from(name, 'utf8');
      const b = createHash('md5').update(Buffer.concat([namespace, bytes])).digest();
      b[6] = (b[6] & 0x0f) | 0x30;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = b.toString('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    };
    const letter = { text: 't', integer: 'i', real: 'r', blob: 'b' };
    const problems = [];
    for (const { name, uuid } of vectors.names)
      if (nameBasedUuid(name) !== uuid) problems.push(`name ${JSON.stringify(name)}: ${nameBasedUuid(name)}, not ${uuid}`);
    const part = ([cls, value]) =>
      cls === 'uuid' ? Buffer.from(value, 'utf8')
      : cls === 'text-hex' ? Buffer.concat([Buffer.from('t:'), Buffer.from(value, 'hex')])
      : Buffer.from(`${letter[cls]}:${value}`, 'utf8');
    const separator = Buffer.from(vectors.separator, 'utf8');
    for (const row of vectors.rows) {
      const parts = [Buffer.from(row.table, 'utf8'), ...Object.values(row.key).map(part)];
      const name = Buffer.concat(parts.flatMap((p, i) => (i ? [separator, p] : [p])));
      const expected = row.name_hex !== undefined ? Buffer.from(row.name_hex, 'hex') : Buffer.from(row.name, 'utf8');
      if (!name.equals(expected)) problems.push(`${row.table} ${JSON.stringify(row.key)}: name ${name.toString('hex')}, not ${expected.toString('hex')} (hex)`);
      if (nameBasedUuid(name) !== row.uuid) problems.push(`${row.table} ${JSON.stringify(row.key)}: ${nameBasedUuid(name)}, not ${row.uuid}`);
    }
    return { checked: vectors.names.length + vectors.rows.length, problems };
  },

  async close() {
    await db.disconnect();
    await db.close();
    setImmediate(() => process.exit(0));
    return {};
  }
};

// One client at a time; requests answered in order.
const server = net.createServer((conn) => {
  let buffer = '';
  let queue = Promise.resolve();
  conn.setEncoding('utf8');
  conn.on('data', (chunk) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      queue = queue.then(async () => {
        let request = {};
        try {
          request = JSON.parse(line);
          const handler = handlers[request.op];
          if (!handler) throw new Error(`unknown op ${request.op}`);
          conn.write(JSON.stringify({ id: request.id, ok: true, ...(await handler(request)) }) + '\n');
        } catch (e) {
          conn.write(JSON.stringify({ id: request.id, ok: false, error: String(e?.stack ?? e) }) + '\n');
        }
      });
    }
  });
});
server.listen(args.socket, () => console.log(`phone agent listening on ${args.socket}`));
