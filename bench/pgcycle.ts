// A delivery's life on PostgreSQL without Herald around it: publish (events and deliveries),
// claim and record the outcome, with Herald's statements, on schema variants, so that what a
// schema change would save is measured before it is made. `node bench/pgcycle.ts [--n 20000]
// [--variants base,no-fk,no-bitmap,unnest-publish,queue,queue-hot,queue-hot50] [--interleave]
// [--explain] [--analyze]`; `--single-publish` compares a single publish made as today with one
// made in one statement. Runs on the bench's private server (pgStats.ts); prints WAL bytes,
// server CPU, statement time and row/index writes per delivery, by phase. Success path only:
// one subscription, every attempt a 2xx.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BenchPg } from './pgStats.ts';
import { uuidv7 } from '../src/domain/ids.ts';
import { claimedEventAndSubscription } from '../src/store/queries/claim.ts';

const { values: args } = parseArgs({ options: { n: { type: 'string', default: '20000' }, variants: { type: 'string' }, repeat: { type: 'string', default: '1' }, interleave: { type: 'boolean', default: false }, explain: { type: 'boolean', default: false }, analyze: { type: 'boolean', default: false }, 'single-publish': { type: 'boolean', default: false } } });
/** Interleaved: publish, claim and complete 1,000 at a time, as a busy Herald does (due work stays small); otherwise all of each phase before the next, as a backlog. */
const N = Number(args.n);
const ROUND = args.interleave ? 1000 : N;
const CLAIM = 100;
const PUBLISH_BATCH = 1000;
const PG_URL = process.env.HERALD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const migrationsDir = new URL('../src/store/postgres/migrations/', import.meta.url).pathname;
const migrations = readdirSync(migrationsDir).filter((f) => /^00[1-4]_.*\.sql$/.test(f)).sort().map((f) => readFileSync(migrationsDir + f, 'utf8'));

/** Each variant: DDL after Herald's migrations 001-004, and how it publishes, claims and completes. */
interface Variant { ddl: string; queue: boolean; unnestPublish?: boolean; session?: string }
const VARIANTS: Record<string, Variant> = {
  base: { ddl: '', queue: false },
  // Foreign keys checked row by row on every delivery and attempt insert: how much they cost.
  'no-fk': {
    ddl: `ALTER TABLE deliveries DROP CONSTRAINT deliveries_tenant_id_fkey, DROP CONSTRAINT deliveries_event_id_fkey, DROP CONSTRAINT deliveries_subscription_id_fkey;
          ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;`,
    queue: false,
  },
  'unnest-publish': { ddl: '', queue: false, unnestPublish: true },
  // The claim's window kept on the due index whatever the planner's statistics say.
  'no-bitmap': { ddl: '', queue: false, session: 'SET enable_bitmapscan = off' },
  // Due and lease state in a narrow table of its own: a claim rewrites that row (two indexes),
  // not the delivery (five); the outcome deletes it.
  queue: {
    ddl: `DROP INDEX deliveries_due;
          CREATE TABLE delivery_queue (delivery_id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL, due_at BIGINT NOT NULL, lease_token TEXT);
          CREATE INDEX delivery_queue_due ON delivery_queue (due_at, subscription_id, delivery_id);`,
    queue: true,
  },
  // And the outcome a HOT update: no index of deliveries names a column it changes (the
  // failed/unsettled indexes would live elsewhere, e.g. on attempts or a table of failures),
  // and pages keep room for the new version.
  'queue-hot': {
    ddl: `DROP INDEX deliveries_due; DROP INDEX deliveries_unsettled; DROP INDEX deliveries_failed_subscription; DROP INDEX deliveries_failed_tenant;
          ALTER TABLE deliveries SET (fillfactor = 80);
          CREATE TABLE delivery_queue (delivery_id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL, due_at BIGINT NOT NULL, lease_token TEXT);
          CREATE INDEX delivery_queue_due ON delivery_queue (due_at, subscription_id, delivery_id);`,
    queue: true,
  },
};
// The same with room on each page for every row's one update: rows are written in batches and
// each gets its outcome once, so a page needs space for a second version of all of them.
VARIANTS['queue-hot50'] = { ...VARIANTS['queue-hot']!, ddl: VARIANTS['queue-hot']!.ddl.replace('fillfactor = 80', 'fillfactor = 50') };

const PAD = 'x'.repeat(900);

async function run(b: BenchPg, name: string, v: Variant) {
  const schema = `cycle_${name.replace(/-/g, '_')}_${randomBytes(3).toString('hex')}`;
  const c = await b.connect(schema);
  try {
    await c.query(`CREATE SCHEMA ${schema}`);
    for (const m of migrations) await c.query(m);
    if (v.ddl) await c.query(v.ddl);
    if (v.session) await c.query(v.session);
    const now = Date.now();
    const tenant = uuidv7();
    const sub = uuidv7();
    await c.query(`INSERT INTO tenants (id, name, client_id, client_secret_hash, subscription_key_hash, api_token_hash, created_at) VALUES ($1, 'c', $1, 'a', $1, $1, $2)`, [tenant, now]);
    await c.query(`INSERT INTO subscriptions (id, tenant_id, dialect, url, description, filters, paused, enabled, status, secrets, headers, properties, created_at, updated_at)
      VALUES ($1, $2, 'native', 'http://x/', '', '[]', false, true, 'active', '[]', '{}', '{}', $3, $3)`, [sub, tenant, now]);
    // Sessions flush table counters within a second of going idle.
    await new Promise((r) => setTimeout(r, 1200));
    const meter = new Map<string, { wal: number; cpu: number; ms: number; statements: number }>();
    const phase = async (label: string, fn: () => Promise<number>) => {
      const lsn0 = (await c.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l;
      const cpu0 = b.serverCpuSeconds()!;
      const t0 = performance.now();
      const statements = await fn();
      const ms = performance.now() - t0;
      const cpu1 = b.serverCpuSeconds()!;
      const wal = Number((await c.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS b', [lsn0])).rows[0].b);
      const m = meter.get(label) ?? { wal: 0, cpu: 0, ms: 0, statements: 0 };
      meter.set(label, { wal: m.wal + wal, cpu: m.cpu + (cpu1 - cpu0), ms: m.ms + ms, statements: m.statements + statements });
    };
    await b.resetStatements();
    const snap = await b.snapshot(schema);
    let explained: string | null = null;
    for (let round = 0; round < N; round += ROUND) {
    const size = Math.min(ROUND, N - round);
    await phase('publish', async () => {
      let statements = 0;
      for (let i = round; i < round + size; i += PUBLISH_BATCH) {
        const t = now + i;
        const evs = Array.from({ length: Math.min(PUBLISH_BATCH, round + size - i) }, () => uuidv7(t));
        const dels = evs.map(() => uuidv7(t));
        await c.query('BEGIN');
        if (v.unnestPublish) {
          await c.query(`INSERT INTO events (id, tenant_id, entity, event, entity_id, entity_uri, parent_type, parent_id, data, occurred_at, created_at, idempotency_key)
            SELECT id, $2, 'Employee', 'Update', '000042', 'v1/employees/000042', 'Company', '7', $3, $4, $4, NULL FROM unnest($1::text[]) AS id`, [evs, tenant, JSON.stringify({ pad: PAD }), t]);
          await c.query(`INSERT INTO deliveries (id, tenant_id, event_id, subscription_id, status, next_attempt_at, created_at, updated_at)
            SELECT d, $3, e, $4, 'pending', $5, $5, $5 FROM unnest($1::text[], $2::text[]) AS x(d, e)`, [dels, evs, tenant, sub, t]);
        } else {
          const ep: unknown[] = [];
          const ev = evs.map((id) => { ep.push(id, tenant, 'Employee', 'Update', '000042', 'v1/employees/000042', 'Company', '7', JSON.stringify({ pad: PAD }), t, t, null); return `(${Array.from({ length: 12 }, (_, j) => `$${ep.length - 11 + j}`).join(',')})`; });
          await c.query(`INSERT INTO events (id,tenant_id,entity,event,entity_id,entity_uri,parent_type,parent_id,data,occurred_at,created_at,idempotency_key) VALUES ${ev.join(',')}`, ep);
          const dp: unknown[] = [];
          const dv = dels.map((id, j) => { dp.push(id, tenant, evs[j], sub, 'pending', t, t, t); return `(${Array.from({ length: 8 }, (_, k) => `$${dp.length - 7 + k}`).join(',')})`; });
          await c.query(`INSERT INTO deliveries (id,tenant_id,event_id,subscription_id,status,next_attempt_at,created_at,updated_at) VALUES ${dv.join(',')}`, dp);
        }
        if (v.queue) await c.query(`INSERT INTO delivery_queue (delivery_id, subscription_id, due_at) SELECT d, $2, $3 FROM unnest($1::text[]) AS d`, [dels, sub, t]);
        await c.query('COMMIT');
        statements += v.queue ? 5 : 4;
      }
      return statements;
    });

    // --analyze: planner statistics as autovacuum's ANALYZE would leave them (the bench's servers run with autovacuum off).
    if (args.analyze) await c.query(v.queue ? 'ANALYZE deliveries, delivery_queue' : 'ANALYZE deliveries');
    const claimed: { id: string; token: string }[] = [];
    const until = now + round + size + 1;
    const claimSql = (token: string) => v.queue
          ? {
            text: `WITH win AS (
               SELECT delivery_id, subscription_id, due_at FROM delivery_queue
               WHERE due_at <= $1 AND NOT (subscription_id = ANY($3::text[])) ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
             ), upd AS (
               UPDATE delivery_queue q SET due_at = $4, lease_token = $5 FROM win WHERE q.delivery_id = win.delivery_id RETURNING q.delivery_id
             )
             SELECT d.*, ${claimedEventAndSubscription('d')}, t.number AS tenant_number
             FROM upd JOIN deliveries d ON d.id = upd.delivery_id JOIN events e ON e.id = d.event_id JOIN subscriptions s ON s.id = d.subscription_id JOIN tenants t ON t.id = s.tenant_id`,
            values: [until, CLAIM, [], until + 60_000, token] }
          : {
            text: `WITH win AS (
               SELECT id, subscription_id, next_attempt_at FROM deliveries
               WHERE status = 'pending' AND next_attempt_at <= $1 AND NOT (subscription_id = ANY($3::text[]))
               ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED
             ), ranked AS (
               SELECT w.id, w.next_attempt_at, COALESCE(r.room, $5) AS room,
                      ROW_NUMBER() OVER (PARTITION BY w.subscription_id ORDER BY w.next_attempt_at) AS rn
               FROM win w LEFT JOIN unnest($6::text[], $7::int[]) AS r(sub, room) ON r.sub = w.subscription_id
             ), picked AS (
               SELECT id FROM ranked WHERE rn <= room ORDER BY next_attempt_at LIMIT $2
             ), upd AS (
               UPDATE deliveries d SET next_attempt_at = $8, lease_token = $9, updated_at = $1 FROM picked WHERE d.id = picked.id RETURNING d.*
             )
             SELECT upd.*, ${claimedEventAndSubscription('upd')}, t.number AS tenant_number
             FROM upd JOIN events e ON e.id = upd.event_id JOIN subscriptions s ON s.id = upd.subscription_id JOIN tenants t ON t.id = s.tenant_id`,
            values: [until, CLAIM, [], CLAIM, 1_000_000, [], [], until + 60_000, token] };
    // EXPLAIN (ANALYZE, BUFFERS) of one claim halfway through, rolled back.
    if (args.explain && explained === null && round + size >= N / 2) {
      await c.query('BEGIN');
      const q = claimSql('explain');
      const plan = await c.query({ text: `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${q.text}`, values: q.values });
      await c.query('ROLLBACK');
      explained = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    }
    await phase('claim', async () => {
      let statements = 0;
      for (;;) {
        const token = randomBytes(12).toString('base64url');
        const rows = (await c.query(claimSql(token))).rows;
        statements++;
        if (rows.length === 0) break;
        for (const r of rows) claimed.push({ id: r.id, token });
      }
      return statements;
    });

    await phase('complete', async () => {
      let statements = 0;
      for (let i = 0; i < claimed.length; i += CLAIM) {
        const part = claimed.slice(i, i + CLAIM);
        const at = Date.now();
        const col = <T>(f: (x: { id: string; token: string }) => T) => part.map(f);
        const params = [col((x) => x.id), col((x) => x.token), col(() => 'succeeded'), col(() => null), col(() => 204), col(() => null), at,
          col(() => at), col(() => 3), col(() => null), col(() => null), col(() => null), col(() => 'w1'), col(() => '{"user-agent":"Herald"}')];
        const values = `SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
             AS v(id, token, kind, next_at, code, err, started_at, duration_ms, error_kind, error, response_body, worker, request_headers)`;
        const insert = `INSERT INTO attempts (delivery_id, subscription_id, attempt_no, started_at, duration_ms, status_code, error_kind, error, response_body, worker, request_headers)
           SELECT upd.id, upd.subscription_id, upd.attempts, v.started_at, v.duration_ms, v.code, v.error_kind, v.error, v.response_body, v.worker, v.request_headers
           FROM upd JOIN v ON v.id = upd.id`;
        const state = `CASE WHEN d.status = 'cancelled' THEN 'cancelled' WHEN v.kind <> 'retry' THEN v.kind
             WHEN s.deleted_at IS NOT NULL THEN 'cancelled' WHEN s.paused THEN 'held' ELSE 'pending' END`;
        await c.query(v.queue
          ? `WITH v AS (${values}), q AS (
               DELETE FROM delivery_queue q USING v WHERE q.delivery_id = v.id AND q.lease_token = v.token RETURNING q.delivery_id
             ), upd AS (
               UPDATE deliveries d SET attempts = d.attempts + 1, last_status_code = v.code, last_error = v.err, updated_at = $7, status = ${state}
               FROM q JOIN v ON v.id = q.delivery_id, subscriptions s WHERE d.id = q.delivery_id AND s.id = d.subscription_id
               RETURNING d.id, d.attempts, d.subscription_id
             ) ${insert}`
          : `WITH v AS (${values}), upd AS (
               UPDATE deliveries d SET attempts = d.attempts + 1, lease_token = NULL, next_attempt_at = v.next_at, last_status_code = v.code,
                 last_error = v.err, updated_at = $7, status = ${state}
               FROM v, subscriptions s WHERE d.id = v.id AND d.lease_token = v.token AND s.id = d.subscription_id
               RETURNING d.id, d.attempts, d.subscription_id
             ) ${insert}`, params);
        statements++;
      }
      return statements;
    });
    }
    await new Promise((r) => setTimeout(r, 1200));
    await c.query('SELECT 1');
    await new Promise((r) => setTimeout(r, 200));
    const k = await b.cost(schema, snap, N);
    const kindOf = (q: string) => (/^INSERT INTO (events|deliveries|delivery_queue)|^BEGIN|^COMMIT/.test(q) ? 'publish' : /^WITH win/.test(q) ? 'claim' : /^WITH v/.test(q) ? 'complete' : 'other');
    const stmts = await b.query(`SELECT query, total_exec_time AS t FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'herald'`);
    const exec = new Map<string, number>();
    for (const r of stmts.rows) exec.set(kindOf(String(r.query).trim()), (exec.get(kindOf(String(r.query).trim())) ?? 0) + Number(r.t));
    const phases = Object.fromEntries([...meter].map(([label, m]) => [label, {
      statements: m.statements, walBytes: m.wal / N, serverCpuMicros: (m.cpu * 1e6) / N, wallMicros: (m.ms * 1000) / N, execMicros: ((exec.get(label) ?? 0) * 1000) / N,
    }]));
    const bad = await c.query(`SELECT count(*)::int AS n FROM deliveries WHERE status <> 'succeeded'`);
    return {
      variant: name, deliveries: N, notSucceeded: bad.rows[0].n, phases, explained,
      total: { heapWrites: k.heapWritesPerDelivery, hotShare: k.hotShare, indexEntries: k.indexEntriesPerDelivery, walBytes: k.walBytesPerDelivery, byTable: k.byTable, byIndex: k.byIndex },
    };
  } finally {
    await c.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
    await c.end();
  }
}

/**
 * --single-publish: one event at a time, as the latency run publishes, made the way Herald
 * makes it (a transaction of seven statements: BEGIN, the tenant, its subscriptions, the event,
 * its deliveries, pg_notify, COMMIT) against one statement in autocommit doing the same.
 * Sequential, so that the figure is the time each takes, round trips included.
 */
async function singlePublish(b: BenchPg, n: number) {
  const schema = `cycle_single_${randomBytes(3).toString('hex')}`;
  const c = await b.connect(schema);
  try {
    await c.query(`CREATE SCHEMA ${schema}`);
    for (const m of migrations) await c.query(m);
    const now = Date.now();
    const tenant = uuidv7();
    await c.query(`INSERT INTO tenants (id, name, client_id, client_secret_hash, subscription_key_hash, api_token_hash, created_at) VALUES ($1, 'c', $1, 'a', $1, $1, $2)`, [tenant, now]);
    await c.query(`INSERT INTO subscriptions (id, tenant_id, dialect, url, description, filters, paused, enabled, status, secrets, headers, properties, created_at, updated_at)
      VALUES ($1, $2, 'native', 'http://x/', '', '[]', false, true, 'active', '[]', '{}', '{}', $3, $3)`, [uuidv7(), tenant, now]);
    const data = JSON.stringify({ pad: PAD });
    const ways: Record<string, () => Promise<number>> = {
      'transaction of 7': async () => {
        const t = Date.now();
        const ev = uuidv7(t);
        await c.query('BEGIN');
        await c.query('SELECT id FROM tenants WHERE id = $1', [tenant]);
        const subs = (await c.query('SELECT id, filters, paused FROM subscriptions WHERE tenant_id = $1 AND deleted_at IS NULL AND enabled = TRUE ORDER BY id', [tenant])).rows;
        await c.query(`INSERT INTO events (id,tenant_id,entity,event,entity_id,entity_uri,parent_type,parent_id,data,occurred_at,created_at,idempotency_key) VALUES ($1,$2,'Employee','Update','000042','v1/employees/000042','Company','7',$3,$4,$4,NULL)`, [ev, tenant, data, t]);
        await c.query(`INSERT INTO deliveries (id,tenant_id,event_id,subscription_id,status,next_attempt_at,created_at,updated_at) VALUES ($1,$2,$3,$4,'pending',$5,$5,$5)`, [uuidv7(t), tenant, ev, subs[0].id, t]);
        await c.query(`SELECT pg_notify('herald_due', '')`);
        await c.query('COMMIT');
        return 7;
      },
      'one statement': async () => {
        const t = Date.now();
        // Deliveries take their ids from the event's here; Herald would pass them in (uuidv7) as an array.
        await c.query(
          `WITH ev AS (
             INSERT INTO events (id,tenant_id,entity,event,entity_id,entity_uri,parent_type,parent_id,data,occurred_at,created_at,idempotency_key)
             SELECT $1, id, 'Employee','Update','000042','v1/employees/000042','Company','7', $3, $4, $4, NULL FROM tenants WHERE id = $2
             RETURNING id, tenant_id
           ), d AS (
             INSERT INTO deliveries (id,tenant_id,event_id,subscription_id,status,next_attempt_at,created_at,updated_at)
             SELECT $5 || '-' || s.id, ev.tenant_id, ev.id, s.id, CASE WHEN s.paused THEN 'held' ELSE 'pending' END, $4, $4, $4
             FROM ev JOIN subscriptions s ON s.tenant_id = ev.tenant_id AND s.deleted_at IS NULL AND s.enabled
             RETURNING status
           )
           SELECT (SELECT count(*) FROM ev) AS events, (SELECT count(*) FROM d) AS deliveries,
                  CASE WHEN EXISTS (SELECT 1 FROM d WHERE status = 'pending') THEN pg_notify('herald_due', '') END`,
          [uuidv7(t), tenant, data, t, uuidv7(t)]);
        return 1;
      },
    };
    const out: Record<string, { msPerPublish: number; statements: number; serverCpuMicros: number }> = {};
    for (const [name, fn] of [...Object.entries(ways), ...Object.entries(ways)]) {
      const cpu0 = b.serverCpuSeconds()!;
      const t0 = performance.now();
      let statements = 0;
      for (let i = 0; i < n; i++) statements += await fn();
      const ms = (performance.now() - t0) / n;
      const cpu = ((b.serverCpuSeconds()! - cpu0) * 1e6) / n;
      const prev = out[name];
      out[name] = prev ? { msPerPublish: (prev.msPerPublish + ms) / 2, statements, serverCpuMicros: (prev.serverCpuMicros + cpu) / 2 } : { msPerPublish: ms, statements, serverCpuMicros: cpu };
    }
    return out;
  } finally {
    await c.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
    await c.end();
  }
}

const b = await BenchPg.open(PG_URL, false);
if (!b?.private) throw new Error('pgcycle needs the private server (root and initdb)');
if (args['single-publish']) {
  try {
    const r = await singlePublish(b, Math.min(N, 5000));
    console.log(`pgcycle --single-publish: ${Math.min(N, 5000)} single publishes each way, sequential, twice alternately (synchronous_commit on, fsync on)`);
    for (const [name, x] of Object.entries(r)) console.log(`  ${name.padEnd(17)} ${x.msPerPublish.toFixed(3)} ms a publish, server CPU ${x.serverCpuMicros.toFixed(0)} µs`);
  } finally {
    await b.close();
  }
  process.exit(0);
}
try {
  const names = args.variants ? args.variants.split(',') : Object.keys(VARIANTS);
  const out = [];
  for (let r = 0; r < Number(args.repeat); r++) {
    for (const name of names) out.push(await run(b, name, VARIANTS[name]!));
  }
  const f = (x: number | null, d = 0) => (x === null ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
  console.log(`pgcycle: ${N} deliveries, ${args.interleave ? 'interleaved 1,000 at a time' : 'each phase over all before the next'}; claims and outcome batches of ${CLAIM}; per delivery`);
  console.log('variant         phase     statements  WAL B  server CPU µs  exec µs  wall µs');
  for (const r of out) {
    for (const [p, x] of Object.entries(r.phases) as [string, any][]) {
      console.log(`${r.variant.padEnd(15)} ${p.padEnd(9)} ${String(x.statements).padStart(10)} ${f(x.walBytes).padStart(6)} ${f(x.serverCpuMicros).padStart(14)} ${f(x.execMicros).padStart(8)} ${f(x.wallMicros).padStart(8)}`);
    }
    const t = r.total;
    console.log(`${r.variant.padEnd(15)} all       WAL ${f(t.walBytes)} B, row versions ${f(t.heapWrites, 2)}, HOT ${t.hotShare === null ? '–' : f(t.hotShare * 100) + ' %'}, index entries (no predicate) ${f(t.indexEntries, 2)}; index growth B: ${Object.entries(t.byIndex).filter(([, i]: any) => i.bytesPerDelivery > 0).map(([n, i]: any) => `${n} ${f(i.bytesPerDelivery)}`).join(', ')}`);
    if (r.notSucceeded) console.log(`  ${r.variant}: ${r.notSucceeded} deliveries did not end succeeded`);
    if (r.explained) console.log(`  claim halfway, EXPLAIN (ANALYZE, BUFFERS):\n${r.explained.replace(/^/gm, '    ')}`);
  }
  console.log(JSON.stringify(out));
} finally {
  await b.close();
}
