// Retention, measured (not part of npm test):
//   npx node bench/retention.ts [--deliveries 1000000] [--engine sqlite,postgres] [--throughput 20000]
//     [--batch 1000] [--pause-ms 100] [--rounds 3] [--vacuum] [--indexes]
// For each engine: writes `deliveries` finished deliveries (one attempt each, four deliveries an
// event, a thousandth of them held) dated 40 days back, as Herald would have made them then;
// measures delivery throughput from a Herald process on that store without pruning and with its
// pruner working through the backlog; prunes it all with Herald's pruner (batch times); and then
// writes and prunes the same again (`rounds` in all), to show the space freed is reused rather
// than added to. --vacuum: at the end, what a one-off VACUUM of the SQLite file (Herald stopped)
// takes and gives back. --indexes: PostgreSQL's size of each index too.
// Sizes: the SQLite file (after a WAL checkpoint) and its free pages; PostgreSQL's
// pg_total_relation_size of the three tables (after a plain VACUUM, which autovacuum would do).
import { randomBytes } from 'node:crypto';
import { uuidv7At as idAt } from '../src/domain/ids.ts';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { BenchHerald, BenchReceiver } from './children.ts';
import { START_ENV, START_FLAGS } from './startScript.ts';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { DAY_MS } from '../src/domain/retention.ts';
import { Pruner } from '../src/dispatch/pruner.ts';
import { makeLogger } from '../src/herald.ts';
import { SecretBox, hashToken, randomToken } from '../src/secrets.ts';
import { insertMany, type Param } from '../src/store/db.ts';
import { openStore } from '../src/store/open.ts';
import type { SqlStore } from '../src/store/sqlStore.ts';

const { values: args } = parseArgs({
  options: {
    deliveries: { type: 'string', default: '1000000' },
    engine: { type: 'string', default: 'sqlite,postgres' },
    throughput: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '1000' },
    'pause-ms': { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    vacuum: { type: 'boolean', default: false },
    indexes: { type: 'boolean', default: false },
  },
});
const N = Number(args.deliveries);
const K = Number(args.throughput);
const PG_URL = process.env.HERALD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ADMIN = 'bench-admin-token';
const SECRET_KEY = randomBytes(32).toString('hex');
const log = (msg: string) => process.stderr.write(`[retention ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;


interface Subs { tenants: string[]; subs: Map<string, string[]> }

async function makeSubscriptions(store: SqlStore): Promise<Subs> {
  const box = new SecretBox(Buffer.from(SECRET_KEY, 'hex'));
  const out: Subs = { tenants: [], subs: new Map() };
  for (let i = 0; i < 5; i++) {
    const t = await store.createTenant(`Old tenant ${i}`, randomToken('hcl_', 16), {
      clientSecretHash: hashToken(randomToken('s', 16)), subscriptionKeyHash: hashToken(randomToken('k', 16)), apiTokenHash: hashToken(randomToken('a', 16)),
    });
    out.tenants.push(t.id);
    const ids: string[] = [];
    for (let j = 0; j < 4; j++) {
      ids.push((await store.createSubscription({
        tenantId: t.id, dialect: 'native', url: `http://127.0.0.1:9/old/${i}/${j}`, description: 'old', filters: [], paused: false, enabled: true,
        status: 'active', secrets: [{ enc: box.seal('whsec_' + randomBytes(32).toString('base64')), expiresAt: null }], headers: {}, properties: {},
      })).id);
    }
    out.subs.set(t.id, ids);
  }
  return out;
}

/** `n` deliveries, 40 days old, written in transactions of 20,000. */
async function seedOld(store: SqlStore, s: Subs, n: number): Promise<{ held: number }> {
  const start = Date.now() - 40 * DAY_MS;
  const headers = JSON.stringify({ 'user-agent': 'Herald/0.1.0', 'content-type': 'application/json', 'webhook-id': idAt(start), 'webhook-timestamp': '1795386811', 'webhook-signature': 'v1,K5o0aUIR1ubHfB8jLm2sRg0aI6ZdRW8V3q1t3y4Bd1s=' });
  const data = JSON.stringify({ first_name: 'José', last_name: 'Example', changed_fields: ['FirstName', 'LastName'], pad: 'x'.repeat(120) });
  let held = 0;
  const per = 20_000;
  for (let done = 0; done < n; done += per) {
    const events: Param[][] = [];
    const deliveries: Param[][] = [];
    const attempts: Param[][] = [];
    for (let k = done; k < Math.min(n, done + per); k += 4) {
      const at = start + Math.floor(k / 4);
      const tenant = s.tenants[(k / 4) % s.tenants.length]!;
      const eventId = idAt(at);
      events.push([eventId, tenant, 'Employee', 'Update', String(k), `v1/employees/${k}`, 'Company', '7', data, at, at, null]);
      for (const sub of s.subs.get(tenant)!) {
        const id = idAt(at);
        const status = (k + deliveries.length) % 1000 === 0 ? 'held' : (k % 32 === 4 ? 'failed' : 'succeeded');
        if (status === 'held') held++;
        const code = status === 'failed' ? 500 : 200;
        deliveries.push([id, tenant, eventId, sub, status, status === 'held' ? 0 : 1, null, status === 'failed' ? code : status === 'held' ? null : 200, status === 'failed' ? 'HTTP 500' : null, at, at + 40]);
        if (status !== 'held') attempts.push([id, sub, 1, at + 1, 38, code, status === 'failed' ? 'http_status' : null, null, status === 'failed' ? 'internal error' : 'ok', 'bench:1', headers]);
      }
    }
    await store.db.tx(async (t) => {
      await insertMany(t, 'events', ['id', 'tenant_id', 'entity', 'event', 'entity_id', 'entity_uri', 'parent_type', 'parent_id', 'data', 'occurred_at', 'created_at', 'idempotency_key'], events);
      await insertMany(t, 'deliveries', ['id', 'tenant_id', 'event_id', 'subscription_id', 'status', 'attempts', 'next_attempt_at', 'last_status_code', 'last_error', 'created_at', 'updated_at'], deliveries);
      await insertMany(t, 'attempts', ['delivery_id', 'subscription_id', 'attempt_no', 'started_at', 'duration_ms', 'status_code', 'error_kind', 'error', 'response_body', 'worker', 'request_headers'], attempts);
    });
  }
  if (store.engine === 'postgres') await store.db.exec('ANALYZE events; ANALYZE deliveries; ANALYZE attempts');
  return { held };
}

interface Sizes { text: string; bytes: number; rows: string }

async function sizes(store: SqlStore, dir: string): Promise<Sizes> {
  const db = store.db;
  const counts = await db.all<{ e: number; d: number; a: number }>('SELECT (SELECT COUNT(*) FROM events) AS e, (SELECT COUNT(*) FROM deliveries) AS d, (SELECT COUNT(*) FROM attempts) AS a');
  const c = counts[0]!;
  const rows = `${Number(c.e).toLocaleString('en-US')} events, ${Number(c.d).toLocaleString('en-US')} deliveries, ${Number(c.a).toLocaleString('en-US')} attempts`;
  if (db.engine === 'sqlite') {
    await db.all('PRAGMA wal_checkpoint(TRUNCATE)');
    const file = statSync(join(dir, 'herald.db')).size;
    const [p] = await db.all<{ page_count: number }>('PRAGMA page_count');
    const [f] = await db.all<{ freelist_count: number }>('PRAGMA freelist_count');
    const [ps] = await db.all<{ page_size: number }>('PRAGMA page_size');
    const free = Number(f!.freelist_count) * Number(ps!.page_size);
    return { text: `file ${mb(file)} (${Number(p!.page_count).toLocaleString('en-US')} pages, ${mb(free)} of them free)`, bytes: file, rows };
  }
  const r = await db.all<{ t: string; n: number; heap: number; idx: number }>(
    `SELECT t, pg_total_relation_size(t) AS n, pg_relation_size(t) AS heap, pg_indexes_size(t) AS idx
     FROM unnest(ARRAY['events', 'deliveries', 'attempts']) AS t`,
  );
  const total = r.reduce((x, y) => x + Number(y.n), 0);
  const heap = r.reduce((x, y) => x + Number(y.heap), 0);
  const idx = r.reduce((x, y) => x + Number(y.idx), 0);
  let each = '';
  if (args.indexes) {
    const ix = await db.all<{ i: string; n: number }>(
      `SELECT c.relname AS i, pg_relation_size(c.oid) AS n FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
       WHERE t.relname IN ('events', 'deliveries', 'attempts') AND t.relnamespace = current_schema()::regnamespace ORDER BY c.relname`,
    );
    each = ` [${ix.map((x) => `${x.i} ${mb(Number(x.n))}`).join(', ')}]`;
  }
  return { text: `${r.map((x) => `${x.t} ${mb(Number(x.n))}`).join(', ')}; total ${mb(total)} (tables ${mb(heap)}, indexes ${mb(idx)})${each}`, bytes: total, rows };
}

async function prune(store: SqlStore): Promise<string> {
  const times: number[] = [];
  const p = new Pruner({
    db: store.db, log: makeLogger('warn'), retentionMs: 30 * DAY_MS, intervalMs: 3_600_000, batch: Number(args.batch), pauseMs: Number(args['pause-ms']),
    onBatch: (_what, _r, ms) => times.push(ms),
  });
  const r = await p.runPass();
  times.sort((a, b) => a - b);
  const q = (f: number) => times[Math.min(times.length - 1, Math.floor(f * times.length))]!.toFixed(1);
  return `pruned ${r.deliveries.toLocaleString('en-US')} deliveries, ${r.attempts.toLocaleString('en-US')} attempts, ${r.events.toLocaleString('en-US')} events in ${(r.ms / 1000).toFixed(1)} s, ` +
    `${r.batches} batches of ${args.batch} (pause ${args['pause-ms']} ms); one batch's transaction: median ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${times.at(-1)!.toFixed(1)} ms`;
}

// ---------- throughput from a Herald process on the seeded store ----------


async function throughput(engine: 'sqlite' | 'postgres', where: Record<string, string>, rx: BenchReceiver, pruning: boolean): Promise<number> {
  const h = await BenchHerald.start({
    ...START_ENV, ...where, HERALD_ADMIN_TOKEN: ADMIN, HERALD_SECRET_KEY: SECRET_KEY,
    HERALD_ALLOW_PRIVATE_NETWORKS: '127.0.0.0/8', HERALD_LOG_LEVEL: 'warn',
    HERALD_RETENTION_DAYS: pruning ? '30' : '0', HERALD_RETENTION_BATCH: args.batch, HERALD_RETENTION_PAUSE_MS: args['pause-ms'],
  }, START_FLAGS);
  try {
    const call = (path: string, token: string, body: unknown) => h.call(path, token, body);
    const t = await call('/admin/v1/tenants', ADMIN, { name: 'Live' });
    const prefix = `/${engine}-${pruning ? 'pruning' : 'plain'}-${randomBytes(3).toString('hex')}/`;
    await call('/api/v1/endpoints', t.credentials.api_token, { url: rx.url + prefix });
    // The pruner's first pass starts a second after Herald does: let it get going.
    if (pruning) await sleep(1500);
    const t0 = performance.now();
    for (let i = 0; i < K; i += 1000) {
      const events = Array.from({ length: Math.min(1000, K - i) }, (_, j) => ({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: String(i + j), data: { pad: 'x'.repeat(900) } }));
      await call('/admin/v1/events/batch', ADMIN, { events });
    }
    while ((await rx.count(prefix)) < K) {
      if (performance.now() - t0 > 600_000) throw new Error('throughput: deliveries did not arrive in 10 minutes');
      await sleep(5);
    }
    return K / ((performance.now() - t0) / 1000);
  } finally {
    await h.stop();
  }
}

// ---------- the run ----------

const report: string[] = [];
const out = (line: string) => { report.push(line); log(line); };

for (const engine of args.engine.split(',') as ('sqlite' | 'postgres')[]) {
  const dir = mkdtempSync(join(os.tmpdir(), 'herald-retention-'));
  const schema = engine === 'postgres' ? `bench_ret_${randomBytes(4).toString('hex')}` : null;
  const opts = { databaseUrl: schema ? PG_URL : null, databaseSchema: schema ?? 'public', dataDir: dir };
  const where: Record<string, string> = schema ? { DATABASE_URL: PG_URL, HERALD_DATABASE_SCHEMA: schema, HERALD_DATA_DIR: dir } : { HERALD_DATA_DIR: dir };
  try {
    let store = await openStore(opts);
    await store.migrate();
    const subs = await makeSubscriptions(store);
    out(`== ${engine}: ${N.toLocaleString('en-US')} deliveries, 40 days old`);
    let t0 = performance.now();
    const { held } = await seedOld(store, subs, N);
    out(`seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${held} held, which stay)`);
    const s0 = await sizes(store, dir);
    out(`before pruning: ${s0.text}; ${s0.rows}`);
    if (K > 0) {
      await store.close();
      const rx = await BenchReceiver.start();
      try {
        const plain = await throughput(engine, where, rx, false);
        out(`throughput, ${K.toLocaleString('en-US')} events, no pruning: ${Math.round(plain).toLocaleString('en-US')} deliveries/s`);
        const pruning = await throughput(engine, where, rx, true);
        out(`throughput, ${K.toLocaleString('en-US')} events, while Herald's pruner works through the backlog: ${Math.round(pruning).toLocaleString('en-US')} deliveries/s (${(pruning / plain).toFixed(2)} of no pruning)`);
      } finally {
        rx.child.kill();
      }
      store = await openStore(opts);
    }
    out(`${K > 0 ? 'the rest (Herald\'s own pruner did part during the throughput run): ' : ''}${await prune(store)}`);
    for (let round = 1; ; round++) {
      const s1 = await sizes(store, dir);
      out(`round ${round}, after pruning: ${s1.text}; ${s1.rows}`);
      if (engine === 'postgres') {
        await store.db.exec('VACUUM events, deliveries, attempts');
        out(`round ${round}, after VACUUM (what autovacuum does by itself): ${(await sizes(store, dir)).text}`);
      }
      if (round >= Number(args.rounds)) {
        if (engine === 'sqlite' && args.vacuum) {
          const t = performance.now();
          await store.db.exec('VACUUM');
          out(`a one-off VACUUM took ${((performance.now() - t) / 1000).toFixed(1)} s: ${(await sizes(store, dir)).text}`);
        }
        break;
      }
      await seedOld(store, subs, N);
      const s2 = await sizes(store, dir);
      out(`round ${round + 1}, after writing ${N.toLocaleString('en-US')} more: ${s2.text}: ${mb(s2.bytes - s1.bytes)} more than after pruning, where the first ${N.toLocaleString('en-US')} took ${mb(s0.bytes)}`);
      out(`round ${round + 1}: ${await prune(store)}`);
    }
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (schema) {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    }
  }
}
console.log(report.join('\n'));
