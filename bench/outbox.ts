// Outbox publish rate: `node bench/outbox.ts [--quick | --tiny] [--events N] [--producers P] [--batch B] [--json]`.
//
// Producers commit transactions that each change a row of their own (an order) and write one
// event into herald_outbox with herald/outbox, while a Herald process (`npm start`'s flags)
// drains the table into its store; one subscription, so each event also makes a delivery.
// Dispatch is off: the figure is the outbox's, not the sender's. Measured, in one run:
// - the producers' commits per second without the outbox (the orders alone), and with it;
// - the rows per second drained into Herald while the producers run (first commit to last row
//   published into Herald's store);
// - the same without the table's wake-up trigger (no NOTIFY: PostgreSQL serialises the commits
//   of notifying transactions), Herald finding the rows by polling;
// - the rows per second drained from a backlog (rows committed at once in one transaction,
//   from that commit until the outbox is empty, nothing else running).
// Other scripts may import runOutboxBench (bench/run.ts: `import { runOutboxBench } from './outbox.ts'`).
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { publish, publishMany } from '../src/outbox/index.js';
import { HeraldProcess } from '../test/helpers/child.ts';
import { testEnv } from '../test/helpers/herald.ts';
import { START_ENV, START_FLAGS } from './startScript.ts';

export interface OutboxBenchOptions {
  /** The PostgreSQL both Herald and the producers use (separate schemas). */
  pgUrl: string;
  /** Producer transactions (one event each) per measurement. */
  events: number;
  /** Producers committing at once. */
  producers: number;
  /** HERALD_OUTBOX_BATCH. */
  batch: number;
  log?: (msg: string) => void;
}

export interface OutboxBenchResult {
  events: number;
  producers: number;
  batch: number;
  /** Producer commits per second, each an order only. */
  commitsPerSecondWithout: number;
  /** Producer commits per second, each an order and its outbox row. */
  commitsPerSecond: number;
  /** Rows per second from the first commit to the last row published into Herald's store, producers running. */
  drainedPerSecond: number;
  /** Time from a producer's last commit to Herald having published every row (ms). */
  drainLagMs: number;
  /** The same three with the table's wake-up trigger disabled: no NOTIFY, Herald finds the rows by polling. */
  commitsPerSecondPolled: number;
  drainedPerSecondPolled: number;
  drainLagMsPolled: number;
  /** Rows per second drained from a backlog of `events` rows, nothing else running. */
  backlogDrainedPerSecond: number;
  /** The machine's 1-minute load average at the start and the end: a shared machine's figures vary with it. */
  load: [number, number];
}

const ADMIN = 'bench-admin-token';
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function admin(base: string, path: string, body: unknown, token = ADMIN): Promise<any> {
  const res = await fetch(base + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** `producers` clients committing `total` transactions between them; answers commits per second. */
async function produce(url: string, producers: number, total: number, tx: (c: pg.Client, n: number) => Promise<void>): Promise<{ perSecond: number; start: number; end: number }> {
  const clients = await Promise.all(Array.from({ length: producers }, async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  }));
  let next = 0;
  const start = now();
  await Promise.all(clients.map(async (c) => {
    for (let n = next++; n < total; n = next++) {
      await c.query('BEGIN');
      await tx(c, n);
      await c.query('COMMIT');
    }
  }));
  const end = now();
  await Promise.all(clients.map((c) => c.end()));
  return { perSecond: total / ((end - start) / 1000), start, end };
}

export async function runOutboxBench(o: OutboxBenchOptions): Promise<OutboxBenchResult> {
  const log = o.log ?? (() => undefined);
  const loadAtStart = loadavg()[0]!;
  const { env, cleanup } = testEnv('postgres', {
    DATABASE_URL: o.pgUrl, HERALD_ADMIN_TOKEN: ADMIN, HERALD_DISPATCH: 'off', HERALD_OUTBOX: 'on', HERALD_OUTBOX_BATCH: String(o.batch),
    HERALD_POLL_INTERVAL_MS: '1000', HERALD_METRICS: 'off',
  });
  const herald = env.HERALD_DATABASE_SCHEMA!;
  // The producer's own tables and its outbox, in a schema apart from Herald's, as in its own database.
  const app = `${herald}_app`;
  const db = new pg.Client({ connectionString: o.pgUrl });
  await db.connect();
  let p: HeraldProcess | null = null;
  try {
    await db.query(`CREATE SCHEMA "${app}"; CREATE TABLE "${app}".orders (id bigserial PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL)`);
    p = await HeraldProcess.start({ ...START_ENV, ...env, HERALD_OUTBOX_SCHEMA: app }, [...START_FLAGS, 'src/cli.ts', 'serve']);
    const tenant = await admin(p.url, '/admin/v1/tenants', { name: 'Bench' });
    await admin(p.url, '/api/v1/endpoints', { url: 'http://127.0.0.1:9/never-sent' }, tenant.credentials.api_token);
    const events = async () => Number((await db.query(`SELECT COUNT(*) AS n FROM "${herald}".events`)).rows[0].n);
    const outboxRows = async () => Number((await db.query(`SELECT COUNT(*) AS n FROM "${app}".herald_outbox`)).rows[0].n);
    // Drained: every row an event in Herald's store and gone from the outbox (the delete commits just after the publish).
    const drained = async (target: number) => {
      for (;;) {
        if ((await events()) >= target && (await outboxRows()) === 0) return now();
        await sleep(5);
      }
    };
    const order = (c: pg.Client, n: number) => c.query(`INSERT INTO "${app}".orders (customer, total) VALUES ($1, $2) RETURNING id`, [`c${n % 97}`, n % 1000]);

    log(`producers without the outbox: ${o.events} commits by ${o.producers}`);
    const without = await produce(o.pgUrl, o.producers, o.events, async (c, n) => { await order(c, n); });

    const withOutbox = async (target: number) => {
      const done = drained(target);
      const r = await produce(o.pgUrl, o.producers, o.events, async (c, n) => {
        const id = (await order(c, n)).rows[0].id;
        await publish(c, { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: String(id), data: { customer: `c${n % 97}`, total: n % 1000 } }, { schema: app });
      });
      const at = await done;
      return { ...r, drainedPerSecond: o.events / ((at - r.start) / 1000), lagMs: at - r.end };
    };
    log(`producers with the outbox: ${o.events} commits by ${o.producers}, Herald draining`);
    const notified = await withOutbox(o.events);
    log(`the same with the wake-up trigger disabled: Herald polls (HERALD_POLL_INTERVAL_MS ${env.HERALD_POLL_INTERVAL_MS}) and drains while batches come full`);
    await db.query(`ALTER TABLE "${app}".herald_outbox DISABLE TRIGGER herald_outbox_notify`);
    const polled = await withOutbox(2 * o.events);
    await db.query(`ALTER TABLE "${app}".herald_outbox ENABLE TRIGGER herald_outbox_notify`);

    log(`backlog: ${o.events} rows committed in one transaction, then drained`);
    await db.query('BEGIN');
    for (let i = 0; i < o.events; i += 1000) {
      await publishMany(db, Array.from({ length: Math.min(1000, o.events - i) }, (_, k) => ({ tenant_id: tenant.id, entity: 'Employee', event: 'Update', entity_id: String(i + k), data: { n: i + k } })), { schema: app });
    }
    await db.query('COMMIT');
    const committedAt = now();
    const backlogAt = await drained(3 * o.events);
    return {
      events: o.events, producers: o.producers, batch: o.batch,
      commitsPerSecondWithout: without.perSecond,
      commitsPerSecond: notified.perSecond,
      drainedPerSecond: notified.drainedPerSecond,
      drainLagMs: notified.lagMs,
      commitsPerSecondPolled: polled.perSecond,
      drainedPerSecondPolled: polled.drainedPerSecond,
      drainLagMsPolled: polled.lagMs,
      backlogDrainedPerSecond: o.events / ((backlogAt - committedAt) / 1000),
      load: [loadAtStart, loadavg()[0]!],
    };
  } finally {
    p?.kill('SIGKILL');
    await p?.exited;
    await db.query(`DROP SCHEMA IF EXISTS "${app}" CASCADE; DROP SCHEMA IF EXISTS "${herald}" CASCADE`).catch(() => undefined);
    await db.end();
    await cleanup().catch(() => undefined);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values: a } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false }, tiny: { type: 'boolean', default: false },
      events: { type: 'string' }, producers: { type: 'string', default: '8' }, batch: { type: 'string', default: '500' }, json: { type: 'boolean', default: false },
    },
  });
  const events = Number(a.events ?? (a.tiny ? 300 : a.quick ? 3000 : 20_000));
  const pgUrl = process.env.HERALD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const r = await runOutboxBench({
    pgUrl, events, producers: Number(a.producers), batch: Number(a.batch),
    log: (m) => process.stderr.write(`[outbox ${new Date().toISOString().slice(11, 19)}] ${m}\n`),
  });
  if (a.json) {
    console.log(JSON.stringify(r));
  } else {
    const f = (n: number) => Math.round(n).toLocaleString('en-US');
    console.log(`outbox, ${f(r.events)} events, ${r.producers} producers, batch ${r.batch}, PostgreSQL at ${pgUrl.replace(/\/\/[^@]*@/, '//')}, load average ${r.load.map((l) => l.toFixed(1)).join(' to ')} on ${availableParallelism()} cores`);
    console.log(`  producer commits/s, order only          ${f(r.commitsPerSecondWithout)}`);
    console.log(`  producer commits/s, order + outbox row  ${f(r.commitsPerSecond)}  (${(r.commitsPerSecond / r.commitsPerSecondWithout).toFixed(2)} of without)`);
    console.log(`  drained into Herald/s, producers running ${f(r.drainedPerSecond)}  (last row in Herald ${f(r.drainLagMs)} ms after the last commit)`);
    console.log(`  without the wake-up trigger (polled):`);
    console.log(`  producer commits/s, order + outbox row  ${f(r.commitsPerSecondPolled)}  (${(r.commitsPerSecondPolled / r.commitsPerSecondWithout).toFixed(2)} of without)`);
    console.log(`  drained into Herald/s, producers running ${f(r.drainedPerSecondPolled)}  (last row in Herald ${f(r.drainLagMsPolled)} ms after the last commit)`);
    console.log(`  drained into Herald/s, from a backlog    ${f(r.backlogDrainedPerSecond)}  (from their commit to an empty outbox)`);
  }
}
