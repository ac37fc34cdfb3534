// Herald's benchmark: `npm run bench [-- --quick | --tiny] [--only a,b] [--no-pg | --shared-pg] [--processes 1,2,4]`.
// Measures, in one run on one machine, a plain keep-alive sender (the ceiling) and Herald
// end to end against the same receiver, and prints every Herald figure as a ratio to the
// ceiling or to its own baseline. It reports; it never fails because the machine is slow.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import os from 'node:os';
import { join } from 'node:path';
import { freePort } from '../test/helpers/freePort.ts';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { BenchPg, procCpuSeconds, type PgCost } from './pgStats.ts';
import { START_ENV, START_FLAGS } from './startScript.ts';
import { nativeBody } from '../src/dialects/native/envelope.ts';
import type { HeraldEvent } from '../src/domain/model.ts';
import { standardSignature } from '../src/signing/signatures.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    tiny: { type: 'boolean', default: false },
    only: { type: 'string' },
    'no-pg': { type: 'boolean', default: false },
    'shared-pg': { type: 'boolean', default: false },
    processes: { type: 'string' },
    events: { type: 'string' },
    out: { type: 'string', default: 'bench/results' },
  },
});

const MODE = args.tiny ? 'tiny' : args.quick ? 'quick' : 'full';
const SIZES = {
  full: { throughput: 50_000, scaleout: 20_000, latencyRate: 500, latencySeconds: 20, fanout: 10_000, backlogLarge: 1_000_000, backlogSmall: 10_000, isolationEvents: 5_000, slowMs: 5000, timeoutMs: 10_000, warmup: 5_000, latencyWarmEvents: 12_000 },
  quick: { throughput: 5_000, scaleout: 3_000, latencyRate: 200, latencySeconds: 3, fanout: 500, backlogLarge: 50_000, backlogSmall: 5_000, isolationEvents: 1_000, slowMs: 5000, timeoutMs: 10_000, warmup: 2_000, latencyWarmEvents: 1_000 },
  tiny: { throughput: 300, scaleout: 200, latencyRate: 50, latencySeconds: 1, fanout: 30, backlogLarge: 2_000, backlogSmall: 200, isolationEvents: 100, slowMs: 1000, timeoutMs: 2000, warmup: 100, latencyWarmEvents: 20 },
}[MODE];
// --events N: the throughput and scale-out runs' size, whatever the mode.
if (args.events) SIZES.throughput = SIZES.scaleout = Number(args.events);
const HEALTHY_ENDPOINTS = 4;
/** Requests in one measurement of the ceiling. */
const CEILING_REQUESTS = Math.max(SIZES.throughput, 1000);
const CEILING_IN_FLIGHT = 64;
const ADMIN = 'bench-admin-token';
/** The shared server, used when the bench cannot run a private one or is told to (--shared-pg). */
const PG_URL = process.env.HERALD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const only = args.only ? new Set(args.only.split(',')) : null;
/** Herald processes in each scale-out step; --tiny (npm test) runs two steps to stay fast. */
const PROCESSES = (args.processes ?? (MODE === 'tiny' ? '1,2' : '1,2,4')).split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
/** A scenario runs when --only names it, or names its family (`throughput` runs throughput-sqlite and throughput-pg). */
const wanted = (name: string) => only === null || only.has(name) || only.has(name.split('-')[0]!);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------- the receiver process ----------

class ReceiverProc {
  private child!: ChildProcess;
  private replies: ((m: any) => void)[] = [];
  url = '';

  static async start(slowMs: number): Promise<ReceiverProc> {
    const r = new ReceiverProc();
    r.child = fork(new URL('./receiver.ts', import.meta.url).pathname, [], { env: { ...process.env, BENCH_SLOW_MS: String(slowMs), BENCH_KEEP_TIMES: '1' } });
    const first = await new Promise<any>((res) => r.child.once('message', res));
    r.url = `http://127.0.0.1:${first.port}`;
    r.child.on('message', (m) => r.replies.shift()?.(m));
    return r;
  }

  private ask(msg: object): Promise<any> {
    return new Promise((res) => { this.replies.push(res); this.child.send(msg); });
  }

  async count(prefix: string): Promise<number> {
    return (await this.ask({ cmd: 'stats', prefix })).matching;
  }

  async times(): Promise<Map<string, number>> {
    return new Map((await this.ask({ cmd: 'times' })).times);
  }

  reset(): Promise<void> {
    return this.ask({ cmd: 'reset' });
  }

  /** When `n` requests under `prefix` have arrived (or the patience ran out: the figure is then partial). */
  async waitFor(prefix: string, n: number, patienceMs: number): Promise<{ at: number; got: number }> {
    const end = now() + patienceMs;
    for (;;) {
      const got = await this.count(prefix);
      if (got >= n || now() > end) return { at: now(), got };
      await sleep(5);
    }
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

// ---------- Herald as its own process ----------

/** The PostgreSQL the bench runs Herald on (see pgStats.ts), or null when none can be reached. */
let benchPg: BenchPg | null = null;
const newSchema = () => `bench_${randomBytes(4).toString('hex')}`;

class HeraldProc {
  child!: ChildProcess;
  url = '';
  private pool!: Pool;
  dir = '';
  schema: string | null = null;
  /** Whether this process's stop() drops the schema (several processes may share one). */
  private ownsSchema = true;
  private halted = false;

  /** `schema`: a PostgreSQL schema to share with other processes; the first one started with it owns it (owner: true). */
  static async start(engine: 'sqlite' | 'postgres', extra: Record<string, string> = {}, shared?: { schema: string; owner: boolean }): Promise<HeraldProc> {
    const h = new HeraldProc();
    h.dir = mkdtempSync(join(os.tmpdir(), 'herald-bench-'));
    if (engine === 'postgres') {
      if (!benchPg) throw new Error('no PostgreSQL');
      h.schema = shared?.schema ?? newSchema();
      h.ownsSchema = shared?.owner ?? true;
    }
    // Herald runs with the node flags and variables of `npm start`; BENCH_HERALD_NODE_ARGS adds more,
    // e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
    const nodeArgs = [...START_FLAGS, ...(process.env.BENCH_HERALD_NODE_ARGS ?? '').split(' ').filter(Boolean)];
    const port = await freePort();
    h.child = spawn(process.execPath, [...nodeArgs, 'src/cli.ts', 'serve'], {
      env: {
        // Herald's settings in the harness's environment reach Herald (HERALD_SENDER_THREAD=off npm run bench).
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('HERALD_'))),
        PATH: process.env.PATH,
        ...START_ENV,
        HERALD_DATA_DIR: h.dir,
        HERALD_PORT: String(port),
        HERALD_ADMIN_TOKEN: ADMIN,
        HERALD_ALLOW_PRIVATE_NETWORKS: '127.0.0.0/8',
        // Herald logs every attempt at info: at warn the log costs nothing here, and what it
        // does log goes to stderr. HERALD_LOG_LEVEL=info npm run bench measures it with the log.
        HERALD_LOG_LEVEL: process.env.HERALD_LOG_LEVEL ?? 'warn',
        ...(h.schema ? { DATABASE_URL: benchPg!.url, HERALD_DATABASE_SCHEMA: h.schema } : {}),
        ...extra,
      },
      stdio: ['ignore', 2, 'inherit'],
    });
    h.url = `http://127.0.0.1:${port}`;
    // Ready when /readyz says so (the ready line is an info line, hidden at warn).
    let exited: number | null | undefined;
    h.child.once('exit', (code) => { exited = code; });
    for (;;) {
      if (exited !== undefined) throw new Error(`Herald exited with ${exited}`);
      const status = await fetch(`${h.url}/readyz`).then((r) => r.status, () => 0);
      if (status === 200) break;
      await sleep(20);
    }
    // Enough connections that the latency run's open loop never waits for one in the harness
    // (with 8, a publish slower than 16 ms queued every later one at 500/s).
    h.pool = new Pool(h.url, { connections: 64 });
    return h;
  }

  async call(method: string, path: string, token: string, body?: unknown): Promise<any> {
    const res = await this.pool.request({
      method: method as 'POST', path,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  }

  /**
   * CPU time the Herald process has used so far (user + system), in seconds. Less sensitive
   * than wall-clock rates to what else the machine is doing, so it compares two builds.
   */
  cpuSeconds(): number {
    return procCpuSeconds(this.child.pid!);
  }

  /** Peak resident set size of the Herald process so far, in MB (VmHWM). */
  peakRssMb(): number {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  }

  /** Herald's /metrics text. */
  async metrics(): Promise<string> {
    const res = await this.pool.request({ method: 'GET', path: '/metrics' });
    return res.body.text();
  }

  /** Ends the process, leaving its files and schema to be read. */
  async halt(): Promise<void> {
    if (this.halted) return;
    this.halted = true;
    // A profiled Herald is stopped gracefully so that it writes its profile.
    this.child.kill(process.env.BENCH_HERALD_NODE_ARGS ? 'SIGTERM' : 'SIGKILL');
    await new Promise((r) => (this.child.exitCode !== null || this.child.signalCode !== null ? r(null) : this.child.once('exit', r)));
    await this.pool.close();
  }

  async stop(): Promise<void> {
    await this.halt();
    rmSync(this.dir, { recursive: true, force: true });
    if (this.schema && this.ownsSchema) await benchPg!.query(`DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
  }
}

// ---------- what is sent ----------

const sampleEvent = (pad: string): HeraldEvent => ({
  id: '01a20564-a31b-7000-8840-7f5a6b07231c' as HeraldEvent['id'], tenantId: 't' as HeraldEvent['tenantId'], entity: 'Employee', event: 'Update',
  entityId: '000042', entityUri: 'v1/employees/000042', parentType: 'Company', parentId: '7', data: { pad }, occurredAt: Date.parse('2026-01-01T00:00:00Z'),
  createdAt: 0, idempotencyKey: null,
});
/** Padding that makes each delivery body 1 KB. */
const PAD = 'x'.repeat(1024 - nativeBody(sampleEvent('')).length);
const BODY_1KB = nativeBody(sampleEvent(PAD));

const eventJson = (tenantId: string, i: number) => ({
  tenant_id: tenantId, entity: 'Employee', event: 'Update', entity_id: String(i).padStart(6, '0'),
  entity_uri: `v1/employees/${String(i).padStart(6, '0')}`, parent_type: 'Company', parent_id: '7', data: { pad: PAD },
});

async function tenantWithEndpoints(h: HeraldProc, urls: string[], paused = false, concurrency = 16) {
  const t = await h.call('POST', '/admin/v1/tenants', ADMIN, { name: 'Bench' });
  const ids: string[] = new Array(urls.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, async () => {
    while (next < urls.length) {
      const i = next++;
      ids[i] = (await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: urls[i], paused })).id;
    }
  }));
  return { tenantId: t.id as string, token: t.credentials.api_token as string, endpointIds: ids };
}

/** Publishes `n` events through the batch API, 1,000 a call, two calls in flight; with several processes, through each in turn. */
async function publishBatches(to: HeraldProc | HeraldProc[], tenantId: string, n: number): Promise<void> {
  const hs = Array.isArray(to) ? to : [to];
  let next = 0;
  let calls = 0;
  await Promise.all([0, 1].map(async () => {
    while (next < n) {
      const start = next;
      next = Math.min(n, next + 1000);
      const events = [];
      for (let i = start; i < next; i++) events.push(eventJson(tenantId, i));
      await hs[calls++ % hs.length]!.call('POST', '/admin/v1/events/batch', ADMIN, { events });
    }
  }));
}

// ---------- the scenarios ----------

type Row = { figure: string; value: string; ratio?: number; goal?: string; met?: boolean };
const rows: Row[] = [];
const results: Record<string, unknown> = {};
const patience = MODE === 'full' ? 15 * 60_000 : 120_000;
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** The ceiling's rate, and the sender's own CPU time per request (the harness does nothing else meanwhile). */
async function ceiling(rx: ReceiverProc, n: number): Promise<{ rate: number; cpuMicrosPerRequest: number }> {
  const pool = new Pool(rx.url, { connections: CEILING_IN_FLIGHT, pipelining: 1 });
  const secret = 'whsec_' + randomBytes(32).toString('base64');
  let sent = 0;
  const cpu0 = process.cpuUsage();
  const t0 = now();
  await Promise.all(Array.from({ length: CEILING_IN_FLIGHT }, async () => {
    while (sent < n) {
      const i = sent++;
      const id = `ceiling-${i}`;
      const ts = Math.floor(Date.now() / 1000);
      const res = await pool.request({
        method: 'POST', path: '/ceiling/',
        headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': standardSignature(secret, id, ts, BODY_1KB) },
        body: BODY_1KB,
      });
      await res.body.text();
    }
  }));
  const rate = n / ((now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  await pool.close();
  return { rate, cpuMicrosPerRequest: (cpu.user + cpu.system) / n };
}

/** Waits until no delivery of the schema is pending: every outcome is recorded (the receiver has them all already). */
async function settled(schema: string, patienceMs: number): Promise<void> {
  const end = now() + patienceMs;
  while (now() < end) {
    const r = await benchPg!.query(`SELECT count(*)::int AS n FROM "${schema}".deliveries WHERE status = 'pending'`);
    if (r.rows[0].n === 0) return;
    await sleep(20);
  }
}

/**
 * `n` events through `processes` Herald processes on one store (PostgreSQL for more than one),
 * published through each in turn, until the receiver holds every delivery. On PostgreSQL, the
 * server's CPU and what it did (pgStats.ts) are counted from the first publish until every
 * outcome is recorded; Herald's CPU until the receipt of the last delivery, as on SQLite.
 */
async function throughput(rx: ReceiverProc, engine: 'sqlite' | 'postgres', n: number, processes = 1, tag = '') {
  const secret = { HERALD_SECRET_KEY: randomBytes(32).toString('hex') };
  const schema = engine === 'postgres' ? newSchema() : undefined;
  const hs: HeraldProc[] = [await HeraldProc.start(engine, secret, schema ? { schema, owner: true } : undefined)];
  try {
    // The first has migrated the schema; the others join it.
    hs.push(...(await Promise.all(Array.from({ length: processes - 1 }, () => HeraldProc.start(engine, secret, { schema: schema!, owner: false })))));
    const prefix = `/tp-${engine}${tag}/`;
    const { tenantId } = await tenantWithEndpoints(hs[0]!, [rx.url + prefix]);
    const onPg = engine === 'postgres' ? benchPg! : null;
    // Herald warmed up as the ceiling's sender is: a fresh process spends its first thousands
    // of deliveries loading modules and compiling (about 5 % of the machine went to V8's
    // compiler threads in a 12 s run). Its own tenant and endpoint, received and settled
    // before anything is counted.
    const warmPrefix = `/tpw-${engine}${tag}/`;
    const warm = await tenantWithEndpoints(hs[0]!, [rx.url + warmPrefix]);
    await publishBatches(hs, warm.tenantId, SIZES.warmup);
    await rx.waitFor(warmPrefix, SIZES.warmup, patience);
    if (onPg) await settled(schema!, 30_000);
    // BENCH_PG_DDL: statements run in the schema after Herald's migrations, to try a schema
    // change with Herald's own statements before making it (e.g. "ALTER TABLE deliveries SET (fillfactor = 50)").
    if (onPg && process.env.BENCH_PG_DDL) await onPg.query(`SET search_path = "${schema}"; ${process.env.BENCH_PG_DDL}; RESET search_path`);
    // A session that goes idle within a second of its last flush of table counters keeps them
    // up to 10 s (PostgreSQL 15's PGSTAT_IDLE_INTERVAL) or until its next transaction: wait
    // that out, so that the warm-up's and the setup's writes land before the snapshot rather
    // than in the figures (1.2 s left 4 % of a full run's row writes to the warm-up). Tiny
    // runs, which only check that the bench works, wait the old 1.2 s.
    if (onPg) await sleep(MODE === 'tiny' ? 1200 : 10_500);
    await onPg?.resetStatements();
    const snap = onPg ? await onPg.snapshot(schema!) : null;
    const heraldCpu = () => hs.reduce((t, h) => t + h.cpuSeconds(), 0);
    const cpu0 = heraldCpu();
    const pg0 = onPg?.serverCpuSeconds() ?? null;
    const t0 = now();
    await publishBatches(hs, tenantId, n);
    const published = now();
    const { at, got } = await rx.waitFor(prefix, n, patience);
    const cpuMicrosPerDelivery = ((heraldCpu() - cpu0) * 1e6) / got;
    const peakRssMb = Math.max(...hs.map((h) => h.peakRssMb()));
    let pgServerMicrosPerDelivery: number | null = null;
    let pgCost: PgCost | null = null;
    if (onPg) {
      await settled(schema!, 30_000);
      const pg1 = onPg.serverCpuSeconds();
      pgServerMicrosPerDelivery = pg0 === null || pg1 === null ? null : ((pg1 - pg0) * 1e6) / got;
      // Herald's sessions end, and with them flush their table counters.
      for (const h of hs) await h.halt();
      await onPg.heraldGone();
      pgCost = await onPg.cost(schema!, snap!, got);
    }
    return {
      processes, deliveries: got, seconds: (at - t0) / 1000, rate: got / ((at - t0) / 1000), publishRate: n / ((published - t0) / 1000),
      cpuMicrosPerDelivery, pgServerMicrosPerDelivery, peakRssMb, pgCost,
    };
  } finally {
    for (const h of hs) await h.stop();
  }
}

/** Percentile `p` of sorted values. */
const pctOf = (sorted: number[], p: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The stages of one event's trip, in ms, from the harness's clock and the store's records. */
const STAGES = [
  ['call → event stored', 'from the publish call to events.created_at: HTTP, parsing, auth, up to the transaction'],
  ['stored → 202 at the caller', 'the transaction (insert, notify, commit) and the answer'],
  ['stored → send started', 'commit, wake-up, claim and hand-off to the sender (attempts.started_at)'],
  ['  of which 202 → send started', 'wake-up, claim and hand-off after the commit; across two clocks, and below 0 when the claim beats the 202 to the caller'],
  ['send started → receipt', 'rendering, signing, the sender thread and the HTTP request'],
] as const;
// call → stored, stored → 202, 202 → send started and send started → receipt add up to the whole.

/**
 * Open loop of single publishes at `rate` a second: publish → receipt latency, and where the
 * time went, per event, from the harness's times (call, 202, receipt) and the store's
 * (events.created_at, attempts.started_at and duration_ms, all on Herald's clock, in whole ms).
 */
async function latency(rx: ReceiverProc, engine: 'sqlite' | 'postgres', rate: number, seconds: number) {
  const h = await HeraldProc.start(engine);
  try {
    const prefix = `/lat-${engine}/`;
    const { tenantId } = await tenantWithEndpoints(h, [rx.url + prefix]);
    const publish = async (i: number, sentAt: Map<string, { call: number; answer: number }>) => {
      const t = now();
      const e = await h.call('POST', '/admin/v1/events', ADMIN, eventJson(tenantId, i));
      sentAt.set(e.id, { call: t, answer: now() });
    };
    // The harness's own pauses of more than 10 ms between two turns of the loop (its event
    // loop was late), when each publish left late and several then left at once.
    const loopGaps: { at: number; ms: number }[] = [];
    // Open loop: each publish leaves at its scheduled time, whether or not earlier ones are done.
    const openLoop = async (first: number, total: number, sentAt: Map<string, { call: number; answer: number }>, perSecond = rate) => {
      const inFlight: Promise<void>[] = [];
      const start = now();
      let sent = 0;
      let last = start;
      while (sent < total) {
        const t = now();
        if (t - last > 10) loopGaps.push({ at: last - start, ms: t - last });
        last = t;
        const due = Math.min(total, Math.floor(((t - start) / 1000) * perSecond) + 1);
        while (sent < due) inFlight.push(publish(first + sent++, sentAt));
        await sleep(1);
      }
      await Promise.all(inFlight);
      return start;
    };
    // Warm-up, not measured, at twice the rate: a fresh process compiles its hot paths under
    // load, and at 500/s its first 2.7 s all queued while it did. V8 optimised another batch
    // of functions after about 10,000 single publishes (a burst of its compiler threads on
    // both cores, seen with perf), which queued publishes for about 200 ms.
    const warmCount = SIZES.latencyWarmEvents;
    await openLoop(0, warmCount, new Map(), rate * 2);
    await rx.waitFor(prefix, warmCount, patience);
    if (engine === 'postgres') await settled(h.schema!, 10_000);
    // The measured span runs on WAL files the warm-up filled, as on a server that has been up
    // for a while (pgStats.ts recycleWal). The throughput runs do not do this: a checkpoint
    // just before them would add full-page images to the WAL they count.
    if (engine === 'postgres') await benchPg!.recycleWal();
    await benchPg?.resetStatements();
    const metricsBefore = await h.metrics().catch(() => '');
    const total = Math.round(rate * seconds);
    const sentAt = new Map<string, { call: number; answer: number }>();
    const start = await openLoop(warmCount, total, sentAt);
    await rx.waitFor(prefix, warmCount + total, patience);
    const times = await rx.times();
    const lat = [...sentAt].map(([id, t]) => (times.get(id) ?? NaN) - t.call).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    const pct = (p: number) => pctOf(lat, p);
    const commits = commitMeans(metricsBefore, await h.metrics().catch(() => ''));
    // The store's side, read once Herald has stopped writing.
    if (engine === 'postgres') await settled(h.schema!, 10_000);
    const claimStatement = engine === 'postgres' ? await claimStatementMean() : null;
    const publishCost = engine === 'postgres' ? await publishStatements(total) : null;
    await h.halt();
    const recorded = await storeTimes(h, [...sentAt.keys()]);
    const perEvent: { call: number; total: number; stages: number[] }[] = [];
    for (const [id, t] of sentAt) {
      const r = recorded.get(id);
      const got = times.get(id);
      if (!r || got === undefined) continue;
      perEvent.push({ call: t.call - start, total: got - t.call, stages: [r.createdAt - t.call, t.answer - r.createdAt, r.startedAt - r.createdAt, r.startedAt - t.answer, got - r.startedAt] });
    }
    // BENCH_LATENCY_DUMP=FILE: every event's call time (ms into the run), total and stages, one
    // JSON line each, to tell a stall that delays a run of events from a spread-out tail.
    if (process.env.BENCH_LATENCY_DUMP) {
      writeFileSync(`${process.env.BENCH_LATENCY_DUMP}.${engine}.jsonl`, perEvent.map((e) => JSON.stringify(e)).join('\n') + '\n');
      writeFileSync(`${process.env.BENCH_LATENCY_DUMP}.${engine}.gaps.json`, JSON.stringify(loopGaps));
    }
    perEvent.sort((a, b) => a.total - b.total);
    const slowest = perEvent.slice(Math.floor(perEvent.length * 0.99));
    const breakdown = STAGES.map(([name, what], i) => {
      const xs = perEvent.map((e) => e.stages[i]!).sort((a, b) => a - b);
      return { stage: name, what, p50: pctOf(xs, 50), p99: pctOf(xs, 99), meanOfSlowest1pc: slowest.length ? mean(slowest.map((e) => e.stages[i]!)) : NaN };
    });
    return {
      engine, offeredPerSecond: rate, seconds, events: total, received: lat.length, p50: pct(50), p95: pct(95), p99: pct(99), max: lat.at(-1)!,
      breakdown, publishCommitMeanMs: commits.publish, completeCommitMeanMs: commits.complete, claimStatement, publishCost,
    };
  } finally {
    await h.stop();
  }
}

/**
 * Mean time of each store write from Herald's herald_store_commit_duration_seconds histogram,
 * in ms, between two readings of /metrics (so that the warm-up is left out).
 */
function commitMeans(before: string, after: string): Record<string, number | null> {
  const read = (text: string, op: string, what: 'sum' | 'count') =>
    Number(new RegExp(`herald_store_commit_duration_seconds_${what}\\{operation="${op}"\\} (\\S+)`).exec(text)?.[1] ?? 0);
  const out: Record<string, number | null> = { publish: null, complete: null };
  for (const op of Object.keys(out)) {
    const count = read(after, op, 'count') - read(before, op, 'count');
    if (count > 0) out[op] = ((read(after, op, 'sum') - read(before, op, 'sum')) / count) * 1000;
  }
  return out;
}

/**
 * Statements run in a publish's transaction (BEGIN to COMMIT: all but claims, outcomes and the
 * dispatcher's due-time poll) since the last reset, per event, and their time in the server.
 */
async function publishStatements(events: number): Promise<{ statementsPerEvent: number; serverMsPerEvent: number } | null> {
  if (!benchPg?.private) return null;
  const r = await benchPg.query(
    `SELECT sum(calls)::bigint AS calls, sum(total_exec_time) AS total FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
     WHERE r.rolname = 'herald' AND query !~* '^\\s*WITH (win|v) AS' AND query !~* 'MIN\\(next_attempt_at\\)' AND query !~* 'FROM recoveries'`);
  const x = r.rows[0];
  return x && Number(x.calls) > 0 ? { statementsPerEvent: Number(x.calls) / events, serverMsPerEvent: Number(x.total) / events } : null;
}

/** The claim statement's calls and mean server time since the last reset (PostgreSQL's own count), or null when not counted. */
async function claimStatementMean(): Promise<{ calls: number; meanMs: number; rowsPerCall: number } | null> {
  if (!benchPg?.private) return null;
  const r = await benchPg.query(
    `SELECT sum(calls)::bigint AS calls, sum(total_exec_time) AS total, sum(rows)::bigint AS rows FROM pg_stat_statements
     WHERE query ILIKE '%FOR UPDATE SKIP LOCKED%' AND query ILIKE '%UPDATE deliveries%'`);
  const x = r.rows[0];
  return x && Number(x.calls) > 0 ? { calls: Number(x.calls), meanMs: Number(x.total) / Number(x.calls), rowsPerCall: Number(x.rows) / Number(x.calls) } : null;
}

/** events.created_at and the first attempt's started_at and duration_ms of each event, from the store of a halted Herald. */
async function storeTimes(h: HeraldProc, ids: string[]): Promise<Map<string, { createdAt: number; startedAt: number; durationMs: number }>> {
  const sql = (list: string) => `SELECT e.id, e.created_at, a.started_at, a.duration_ms FROM events e
    JOIN deliveries d ON d.event_id = e.id JOIN attempts a ON a.delivery_id = d.id AND a.attempt_no = 1 WHERE e.id IN (SELECT value FROM ${list})`;
  let rows: { id: string; created_at: number; started_at: number; duration_ms: number }[];
  if (h.schema) {
    rows = (await benchPg!.query(sql('unnest($1::text[]) AS value').replace(/FROM events/, `FROM "${h.schema}".events`)
      .replace(/JOIN deliveries/, `JOIN "${h.schema}".deliveries`).replace(/JOIN attempts/, `JOIN "${h.schema}".attempts`), [ids])).rows;
  } else {
    const db = new DatabaseSync(join(h.dir, 'herald.db'));
    try {
      rows = db.prepare(sql('json_each(?)')).all(JSON.stringify(ids)) as typeof rows;
    } finally {
      db.close();
    }
  }
  return new Map(rows.map((r) => [r.id, { createdAt: Number(r.created_at), startedAt: Number(r.started_at), durationMs: Number(r.duration_ms) }]));
}

async function fanout(rx: ReceiverProc, subscriptions: number) {
  // One tenant holds them all: above the 1,000 a tenant may have by default.
  const h = await HeraldProc.start('sqlite', { HERALD_MAX_SUBSCRIPTIONS_PER_TENANT: String(Math.max(1000, subscriptions)) });
  try {
    const prefix = '/fan/';
    const { tenantId } = await tenantWithEndpoints(h, Array.from({ length: subscriptions }, () => rx.url + prefix));
    const t0 = now();
    await h.call('POST', '/admin/v1/events', ADMIN, eventJson(tenantId, 1));
    const { at, got } = await rx.waitFor(prefix, subscriptions, patience);
    return { subscriptions, received: got, seconds: (at - t0) / 1000, rate: got / ((at - t0) / 1000) };
  } finally {
    await h.stop();
  }
}

/** Drain rate over the first `measure` deliveries of a backlog of `size` due deliveries. */
async function backlog(rx: ReceiverProc, size: number, measure: number, tag = 'a') {
  const h = await HeraldProc.start('sqlite');
  try {
    // Each drain counts only its own deliveries at the receiver.
    const prefix = `/backlog-${size}-${tag}/`;
    const { tenantId, token, endpointIds } = await tenantWithEndpoints(h, [rx.url + prefix], true);
    const p0 = now();
    await publishBatches(h, tenantId, size);
    const publishSeconds = (now() - p0) / 1000;
    const u0 = now();
    await h.call('PATCH', `/api/v1/endpoints/${endpointIds[0]}`, token, { paused: false });
    const t0 = now();
    const { at, got } = await rx.waitFor(prefix, measure, patience);
    return { backlog: size, measured: got, rate: got / ((at - t0) / 1000), publishSeconds, unpauseSeconds: (t0 - u0) / 1000, peakRssMb: h.peakRssMb() };
  } finally {
    await h.stop();
  }
}

async function isolation(rx: ReceiverProc, events: number, withSlow: boolean) {
  const h = await HeraldProc.start('sqlite', { HERALD_REQUEST_TIMEOUT_MS: String(SIZES.timeoutMs), HERALD_LEASE_SECONDS: String((SIZES.timeoutMs * 3) / 1000) });
  try {
    const tag = withSlow ? 'with' : 'without';
    const healthy = Array.from({ length: HEALTHY_ENDPOINTS }, (_, i) => `${rx.url}/iso-${tag}-h${i}/`);
    const urls = withSlow ? [...healthy, `${rx.url}/slow/iso-${tag}/`] : healthy;
    const { tenantId } = await tenantWithEndpoints(h, urls);
    const t0 = now();
    await publishBatches(h, tenantId, events);
    const want = events * HEALTHY_ENDPOINTS;
    const { at, got } = await rx.waitFor(`/iso-${tag}-h`, want, patience);
    return { healthyDeliveries: got, rate: got / ((at - t0) / 1000) };
  } finally {
    await h.stop();
  }
}

// ---------- the run ----------

const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
const machine = {
  cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  node: process.version, platform: `${os.platform()} ${os.arch()}`,
};
log(`mode ${MODE}: ${JSON.stringify(SIZES)}`);
const rx = await ReceiverProc.start(SIZES.slowMs);
benchPg = args['no-pg'] ? null : await BenchPg.open(PG_URL, args['shared-pg']!);
if (benchPg) log(`PostgreSQL: ${benchPg.why}`);
// An interrupted bench leaves no private server running.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { benchPg?.destroyNow(); process.exit(130); });
/** Detail printed under the table: what PostgreSQL did per delivery. */
const details: string[] = [];

/** Rows for what PostgreSQL did per delivery in a run, and its detail under the table. */
function pgCostRows(r: { pgServerMicrosPerDelivery: number | null; cpuMicrosPerDelivery: number; pgCost: PgCost | null }, title: string): void {
  if (r.pgServerMicrosPerDelivery !== null) rows.push({ figure: `  PostgreSQL server CPU per delivery (${benchPg!.private ? 'its own processes' : 'every postgres process here'})`, value: `${fmt(r.pgServerMicrosPerDelivery)} µs` });
  const k = r.pgCost;
  if (!k) return;
  if (k.statementsPerDelivery !== null) rows.push({ figure: '  PostgreSQL statements per delivery (BEGIN, COMMIT included)', value: fmt(k.statementsPerDelivery, 2) });
  rows.push({ figure: '  WAL per delivery (full-page images per delivery)', value: `${fmt(k.walBytesPerDelivery)} B (${k.walFpiPerDelivery === null ? '?' : fmt(k.walFpiPerDelivery, 2)})` });
  rows.push({ figure: '  row versions written per delivery / HOT share of updates', value: `${fmt(k.heapWritesPerDelivery, 2)} / ${k.hotShare === null ? '–' : `${fmt(k.hotShare * 100)} %`}` });
  rows.push({ figure: '  index entries written per delivery (indexes without a predicate)', value: fmt(k.indexEntriesPerDelivery, 2) });
  details.push('', `What PostgreSQL did per delivery, ${title} (${fmt(k.deliveries)} deliveries):`);
  details.push('  table          inserts  updates  HOT updates  deletes');
  for (const [t, v] of Object.entries(k.byTable)) details.push(`  ${t.padEnd(13)} ${fmt(v.ins, 2).padStart(8)} ${fmt(v.upd, 2).padStart(8)} ${fmt(v.hotUpd, 2).padStart(12)} ${fmt(v.del, 2).padStart(8)}`);
  details.push('  index                              entries  bytes grown  scans');
  for (const [i, v] of Object.entries(k.byIndex)) details.push(`  ${(i + (v.partial ? ' (partial)' : '')).padEnd(34)} ${(v.entriesPerDelivery === null ? '?' : fmt(v.entriesPerDelivery, 2)).padStart(7)} ${fmt(v.bytesPerDelivery, 1).padStart(12)} ${fmt(v.scansPerDelivery, 2).padStart(6)}`);
  const stmt = (s: PgCost['top']['byCalls'][number]) =>
    `  ${fmt(s.calls / k.deliveries, 3).padStart(7)} ${fmt(s.totalMs / k.deliveries * 1000, 1).padStart(8)} ${fmt(s.meanMs, 3).padStart(8)} ${fmt(s.walBytes / k.deliveries).padStart(6)} ${fmt(s.sharedBlks / s.calls).padStart(7)} ${fmt(s.rows / s.calls, 1).padStart(6)}  ${s.query.slice(0, 100)}`;
  if (k.top.byCalls.length) {
    details.push('  (per delivery: calls, µs in the server, WAL bytes; per call: ms, buffers touched, rows)');
    details.push('  calls/d  µs/d     ms/call  WAL/d  blks/c rows/c  statement (top by calls)');
    details.push(...k.top.byCalls.map(stmt));
    details.push('  calls/d  µs/d     ms/call  WAL/d  blks/c rows/c  statement (top by total time)');
    details.push(...k.top.byTime.map(stmt));
  }
}

try {
  // Warm-up, not measured: a cold sender and receiver (JIT, connections) measured 40 % slower.
  await ceiling(rx, Math.min(SIZES.throughput, 5000));
  log('ceiling');
  const first = await ceiling(rx, CEILING_REQUESTS);
  const ceil = first.rate;
  results.ceiling = { ...first, inFlight: CEILING_IN_FLIGHT, bodyBytes: BODY_1KB.length };
  rows.push({ figure: `ceiling: undici Pool, ${CEILING_IN_FLIGHT} in flight, ${BODY_1KB.length} B signed bodies`, value: `${fmt(ceil)} req/s`, ratio: 1 });
  rows.push({ figure: '  sender CPU per request', value: `${fmt(first.cpuMicrosPerRequest)} µs` });
  if (benchPg) results.postgres = { server: benchPg.why, private: benchPg.private };

  for (const engine of ['sqlite', 'postgres'] as const) {
    if (!wanted(`throughput-${engine === 'sqlite' ? 'sqlite' : 'pg'}`)) continue;
    if (engine === 'postgres' && !benchPg) {
      rows.push({ figure: 'throughput, PostgreSQL', value: 'not run: PostgreSQL not reachable' });
      continue;
    }
    // The machine's speed drifts (a shared host): the ratio is to the mean of ceilings measured
    // just before and just after.
    log(`ceiling before throughput ${engine}`);
    const c0 = await ceiling(rx, CEILING_REQUESTS);
    log(`throughput ${engine}`);
    const r = await throughput(rx, engine, SIZES.throughput);
    log(`ceiling after throughput ${engine}`);
    const c1 = await ceiling(rx, CEILING_REQUESTS);
    const c = { rate: (c0.rate + c1.rate) / 2, cpuMicrosPerRequest: (c0.cpuMicrosPerRequest + c1.cpuMicrosPerRequest) / 2 };
    results[`throughput_${engine}`] = { ...r, ceilingBefore: c0, ceilingAfter: c1 };
    const goal = engine === 'sqlite' ? 0.5 : 0.35;
    const name = engine === 'sqlite' ? 'SQLite' : 'PostgreSQL';
    rows.push({ figure: `throughput, ${name}: ${fmt(SIZES.throughput)} events, batch publish`, value: `${fmt(r.rate)} deliveries/s`, ratio: r.rate / c.rate, goal: `≥ ${goal}`, met: r.rate / c.rate >= goal });
    rows.push({ figure: `  the ceiling just before / just after`, value: `${fmt(c0.rate)} / ${fmt(c1.rate)} req/s` });
    rows.push({ figure: `  publish rate, ${name}`, value: `${fmt(r.publishRate)} events/s` });
    rows.push({ figure: `  Herald CPU per delivery / sender CPU per request`, value: `${fmt(r.cpuMicrosPerDelivery)} / ${fmt(c.cpuMicrosPerRequest)} µs`, ratio: r.cpuMicrosPerDelivery / c.cpuMicrosPerRequest });
    if (engine === 'postgres') pgCostRows(r, 'throughput run');
    rows.push({ figure: `  peak RSS, ${name} throughput`, value: `${r.peakRssMb} MB` });
  }

  if (wanted('scaleout')) {
    if (!benchPg) rows.push({ figure: 'scale-out, PostgreSQL', value: 'not run: PostgreSQL not reachable' });
    else {
      // Each step is rated against the mean of the ceilings just before and just after it.
      log('ceiling before scale-out');
      let before = await ceiling(rx, CEILING_REQUESTS);
      const steps = [];
      for (const p of PROCESSES) {
        log(`scale-out: ${p} Herald process${p > 1 ? 'es' : ''}`);
        const r = await throughput(rx, 'postgres', SIZES.scaleout, p, `-x${p}`);
        log(`ceiling after ${p}`);
        const after = await ceiling(rx, CEILING_REQUESTS);
        steps.push({ ...r, ceilingBefore: before, ceilingAfter: after, ratio: r.rate / ((before.rate + after.rate) / 2) });
        before = after;
      }
      results.scaleout = steps;
      const base = steps[0]!;
      for (const s of steps) {
        rows.push({
          figure: `scale-out, PostgreSQL: ${s.processes} Herald process${s.processes > 1 ? 'es' : ''}, ${fmt(SIZES.scaleout)} events (rate; of ${base.processes})`,
          value: `${fmt(s.rate)} deliveries/s; ${fmt(s.rate / base.rate, 2)}`, ratio: s.ratio,
        });
        rows.push({ figure: `  PostgreSQL server / Herald (all processes) CPU per delivery`, value: `${s.pgServerMicrosPerDelivery === null ? '?' : fmt(s.pgServerMicrosPerDelivery)} / ${fmt(s.cpuMicrosPerDelivery)} µs` });
        if (s.pgCost?.statementsPerDelivery != null) rows.push({ figure: `  statements / WAL bytes per delivery`, value: `${fmt(s.pgCost.statementsPerDelivery, 2)} / ${fmt(s.pgCost.walBytesPerDelivery)} B` });
      }
    }
  }

  for (const engine of ['sqlite', 'postgres'] as const) {
    if (!wanted(`latency-${engine === 'sqlite' ? 'sqlite' : 'pg'}`)) continue;
    const name = engine === 'sqlite' ? 'SQLite' : 'PostgreSQL';
    if (engine === 'postgres' && !benchPg) {
      rows.push({ figure: 'latency, PostgreSQL', value: 'not run: PostgreSQL not reachable' });
      continue;
    }
    log(`latency ${engine}`);
    // The machine's own cost of a round trip to the server, just before: the latency goal is
    // absolute, and each publish, claim and outcome is such a round trip.
    const sample = engine === 'postgres' ? await benchPg!.roundTrip() : null;
    const trip = sample && { p50Us: pctOf(sample.sortedUs, 50), p99Us: pctOf(sample.sortedUs, 99), clientCpuUs: sample.clientCpuUs };
    const r = { ...(await latency(rx, engine, SIZES.latencyRate, SIZES.latencySeconds)), roundTrip: trip };
    results[engine === 'sqlite' ? 'latency' : 'latency_postgres'] = r;
    rows.push({ figure: `latency publish→receipt, ${name}, ${SIZES.latencyRate}/s for ${SIZES.latencySeconds} s: p50 / p95 / max`, value: `${fmt(r.p50, 1)} / ${fmt(r.p95, 1)} / ${fmt(r.max, 1)} ms` });
    rows.push({ figure: '  p99', value: `${fmt(r.p99, 1)} ms`, goal: '≤ 25 ms', met: r.p99 <= 25 });
    rows.push({ figure: '  where the time goes, ms: p50 / p99 / mean of the slowest 1 %', value: '' });
    for (const b of r.breakdown) rows.push({ figure: `    ${b.stage}`, value: `${fmt(b.p50, 1)} / ${fmt(b.p99, 1)} / ${fmt(b.meanOfSlowest1pc, 1)}` });
    if (r.publishCommitMeanMs !== null) rows.push({ figure: '  store writes as Herald saw them, mean: publish / outcomes', value: `${fmt(r.publishCommitMeanMs, 2)} / ${r.completeCommitMeanMs === null ? '?' : fmt(r.completeCommitMeanMs, 2)} ms` });
    if (r.publishCost) rows.push({ figure: '  a publish in the server: statements, their time', value: `${fmt(r.publishCost.statementsPerEvent, 1)}, ${fmt(r.publishCost.serverMsPerEvent, 2)} ms` });
    if (r.claimStatement) rows.push({ figure: '  claim statement in the server: mean, rows a claim', value: `${fmt(r.claimStatement.meanMs, 2)} ms, ${fmt(r.claimStatement.rowsPerCall, 1)}` });
    if (trip) rows.push({ figure: '  a round trip to the server just before (SELECT $1): p50 / p99, client CPU', value: `${fmt(trip.p50Us)} / ${fmt(trip.p99Us)} µs, ${fmt(trip.clientCpuUs)} µs` });
  }

  if (wanted('fanout')) {
    log('fan-out');
    const r = await fanout(rx, SIZES.fanout);
    results.fanout = r;
    rows.push({ figure: `fan-out: one event to ${fmt(SIZES.fanout)} subscriptions, SQLite`, value: `${fmt(r.seconds, 2)} s (${fmt(r.rate)} deliveries/s)`, ratio: r.rate / ceil });
  }

  if (wanted('backlog')) {
    const measure = SIZES.backlogSmall;
    // The small backlog is drained before and after the large one, and the large one is
    // rated against their mean: the machine's speed drifts over the minutes between.
    log(`backlog ${SIZES.backlogSmall}`);
    const before = await backlog(rx, SIZES.backlogSmall, measure);
    log(`backlog ${SIZES.backlogLarge}`);
    const large = await backlog(rx, SIZES.backlogLarge, measure);
    log(`backlog ${SIZES.backlogSmall} again`);
    const after = await backlog(rx, SIZES.backlogSmall, measure, 'b');
    const small = (before.rate + after.rate) / 2;
    results.backlog = { small: before, smallAfter: after, large };
    rows.push({ figure: `backlog ${fmt(SIZES.backlogSmall)}: drain rate, SQLite, before / after the large one`, value: `${fmt(before.rate)} / ${fmt(after.rate)} deliveries/s`, ratio: small / ceil });
    rows.push({ figure: `backlog ${fmt(SIZES.backlogLarge)}: drain rate, first ${fmt(measure)}`, value: `${fmt(large.rate)} deliveries/s`, ratio: large.rate / small, goal: '≥ 0.90 of 10k', met: large.rate / small >= 0.9 });
    rows.push({ figure: `  peak RSS with ${fmt(SIZES.backlogLarge)} backlog`, value: `${large.peakRssMb} MB`, goal: '≤ 200 MB', met: large.peakRssMb <= 200 });
    rows.push({ figure: `  building it: publish, unpause`, value: `${fmt(large.publishSeconds, 1)} s, ${fmt(large.unpauseSeconds, 1)} s` });
  }

  if (wanted('isolation')) {
    log('isolation without a slow endpoint');
    const base = await isolation(rx, SIZES.isolationEvents, false);
    log('isolation with a slow endpoint');
    const slow = await isolation(rx, SIZES.isolationEvents, true);
    results.isolation = { without: base, with: slow };
    rows.push({ figure: `isolation: ${HEALTHY_ENDPOINTS} healthy endpoints, no slow one`, value: `${fmt(base.rate)} deliveries/s` });
    rows.push({ figure: `  beside one answering after ${SIZES.slowMs / 1000} s`, value: `${fmt(slow.rate)} deliveries/s`, ratio: slow.rate / base.rate, goal: '≥ 0.90', met: slow.rate / base.rate >= 0.9 });
  }
} finally {
  rx.stop();
  await benchPg?.close();
}

// ---------- the report ----------

const w1 = Math.max(...rows.map((r) => r.figure.length));
const w2 = Math.max(...rows.map((r) => r.value.length));
const lines = [
  `Herald benchmark (${MODE}), ${new Date().toISOString()}`,
  `machine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}`,
  `command: ${command}`,
  '',
  `${'figure'.padEnd(w1)}  ${'value'.padEnd(w2)}  ratio  goal`,
  ...rows.map((r) => `${r.figure.padEnd(w1)}  ${r.value.padEnd(w2)}  ${r.ratio === undefined ? '     ' : r.ratio.toFixed(2).padStart(5)}  ${r.goal ? `${r.goal} ${r.met ? 'met' : 'NOT met'}` : ''}`),
  ...(benchPg ? ['', `PostgreSQL: ${benchPg.why}`] : []),
  ...details,
];
console.log(lines.join('\n'));
mkdirSync(args.out!, { recursive: true });
const file = join(args.out!, `${new Date().toISOString().replace(/[:.]/g, '-')}-${MODE}.json`);
writeFileSync(file, JSON.stringify({ mode: MODE, sizes: SIZES, machine, command, results, rows }, null, 2) + '\n');
console.log(`\nfigures written to ${file}`);
process.exit(0);
