// Metrics, attempt logs and readiness on each engine: a real Herald sends known traffic to
// real receivers (some answer 200, some 500 until the delivery fails, one 410, one port
// refuses), then /metrics is scraped and its counts checked exactly, the log read line by
// line, and /readyz asked with a healthy store, a missing migration and a closed store.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { loadConfig, type Env } from '../src/config.ts';
import type { Worker } from 'node:worker_threads';
import { ThreadedSender } from '../src/dispatch/senderThread.ts';
import { Herald, makeLogger } from '../src/herald.ts';
import { loadMigrations } from '../src/store/migrate.ts';
import { ADMIN, testEnv } from './helpers/herald.ts';
import { engines, PG_URL } from './helpers/pg.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

const METRICS_TOKEN = 'metrics-token-4f1c9a';

/** One sample of the Prometheus text format: name, labels, value. */
interface Sample { name: string; labels: Record<string, string>; value: number }

function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample with this name and these labels (0 when absent, as Prometheus reads a missing counter). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.reduce((n, s) => n + s.value, 0);
}

/** Lines that a pino logger writes, parsed. */
class LogCapture extends Writable {
  readonly text: string[] = [];
  _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text.push(chunk.toString('utf8'));
    done();
  }
  lines(): any[] {
    return this.text.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }
  all(): string {
    return this.text.join('');
  }
}

interface Running {
  herald: Herald;
  url: string;
  env: Env;
  log: LogCapture;
  call(method: string, path: string, token: string | null, body?: unknown): Promise<{ status: number; body: any; text: string; headers: Headers }>;
  stop(): Promise<void>;
}

async function start(engine: 'sqlite' | 'postgres', extra: Env = {}, level = 'silent'): Promise<Running> {
  const { env, cleanup } = testEnv(engine, extra);
  const log = new LogCapture();
  const herald = new Herald(loadConfig(env), makeLogger(level, log));
  await herald.start();
  const call: Running['call'] = async (method, path, token, body) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(herald.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = null;
    try { parsed = JSON.parse(text); } catch { /* Prometheus text */ }
    return { status: res.status, body: parsed, text, headers: res.headers };
  };
  return { herald, url: herald.url, env, log, call, stop: async () => { await herald.stop(); await cleanup(); } };
}

/** A loopback port nothing listens on: connections to it are refused. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

/** Runs SQL on Herald's database over a connection of its own, as an operator's tool would. */
async function onTheSide(r: Running, engine: 'sqlite' | 'postgres', sql: string, params: (string | number)[] = []): Promise<void> {
  if (engine === 'sqlite') {
    const db = new DatabaseSync(join(r.env.HERALD_DATA_DIR!, 'herald.db'));
    try { db.prepare(sql.replace(/\$(\d+)/g, '?$1')).run(...params); } finally { db.close(); }
    return;
  }
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path="${r.env.HERALD_DATABASE_SCHEMA}"` });
  await c.connect();
  try { await c.query(sql, params); } finally { await c.end(); }
}

for (const engine of engines()) {
  describe(`metrics, attempt logs and readiness on ${engine}`, () => {
    let h: Running;
    const receivers: Receiver[] = [];
    const rx = async (respond: ConstructorParameters<typeof Receiver>[0]) => {
      const r = await new Receiver(respond).start();
      receivers.push(r);
      return r;
    };
    // What the traffic below must add up to.
    const expected = {
      events: 8, deliveries: 26,
      outcomes: { succeeded: 14, retry: 29, failed: 11, gone: 1 },
      attempts: { '2xx/none': 14, '5xx/http_status': 34, 'none/connection': 6, '4xx/http_status': 1 },
    };
    const secrets: string[] = [ADMIN, METRICS_TOKEN, 'URL-SECRET-in-query', 'BODY-MARKER-7d2e', 'ANSWER-MARKER-91b'];
    let ids: Record<string, string> = {};

    before(async () => {
      // Two retries 50 ms apart, no jitter: a failing delivery makes three attempts, quickly.
      h = await start(engine, {
        HERALD_METRICS_TOKEN: METRICS_TOKEN, HERALD_METRICS_TOP_SUBSCRIPTIONS: '2', HERALD_RETRY_SCHEDULE: '0.05,0.05', HERALD_RETRY_JITTER: '0',
      }, 'info');
    });
    after(async () => {
      await h.stop();
      await Promise.all(receivers.map((r) => r.stop()));
    });

    test('known traffic: every count on /metrics is exact', async () => {
      const tenant = (await h.call('POST', '/admin/v1/tenants', ADMIN, { name: 'Metrics' })).body;
      const other = (await h.call('POST', '/admin/v1/tenants', ADMIN, { name: 'Gone' })).body;
      const token = tenant.credentials.api_token as string;
      secrets.push(token, tenant.credentials.client_secret, other.credentials.api_token);
      const ok = await rx(() => ({ status: 200, body: 'ANSWER-MARKER-91b' }));
      const down = await rx(() => ({ status: 500, body: 'ANSWER-MARKER-91b down' }));
      const seen = new Set<string>();
      const flaky = await rx((r) => {
        const id = String(r.headers['webhook-id']);
        if (seen.has(id)) return { status: 200 };
        seen.add(id);
        return { status: 500 };
      });
      const gone = await rx(() => ({ status: 410 }));
      const endpoint = async (t: string, body: Record<string, unknown>) => {
        const r = await h.call('POST', '/api/v1/endpoints', t, body);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        secrets.push(r.body.secret);
        return r.body.id as string;
      };
      ids = {
        ok: await endpoint(token, { url: `${ok.url}/hook?token=URL-SECRET-in-query` }),
        down: await endpoint(token, { url: down.url }),
        // Fewer failures than `down` and `flaky`: left out of the top 2.
        downUpdates: await endpoint(token, { url: `${down.url}/updates`, filters: ['Employee.Update'] }),
        flaky: await endpoint(token, { url: flaky.url }),
        dead: await endpoint(token, { url: `http://127.0.0.1:${await deadPort()}/`, filters: ['Employee.Update'] }),
        gone: await endpoint(other.credentials.api_token, { url: gone.url }),
      };
      const publish = async (e: Record<string, unknown>) => {
        const r = await h.call('POST', '/admin/v1/events', ADMIN, e);
        assert.equal(r.status, 202, JSON.stringify(r.body));
        return r.body;
      };
      // 5 Add events reach ok, down, flaky; 2 Update events reach those and downUpdates and dead; 1 event reaches gone.
      for (let i = 0; i < 5; i++) await publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: `a${i}`, data: { note: 'BODY-MARKER-7d2e' }, idempotency_key: `add-${i}` });
      // The same idempotency key again: the first event is answered, nothing new is counted.
      assert.equal((await publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: 'a0', idempotency_key: 'add-0' })).duplicate, true);
      for (let i = 0; i < 2; i++) await publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Update', entity_id: `u${i}`, data: { note: 'BODY-MARKER-7d2e' } });
      await publish({ tenant_id: other.id, entity: 'Employee', event: 'Add', entity_id: 'g' });

      await Promise.all([ok.waitFor(7), down.waitFor(21 + 6), flaky.waitFor(14), gone.waitFor(1)]);
      await eventually(async () => {
        const pending = await h.call('GET', '/admin/v1/deliveries?status=pending&limit=500', ADMIN);
        return pending.body.data.length === 0;
      }, 15_000, 'every delivery to finish');
      assert.equal(down.received.length, 27, 'no attempt beyond the schedule');

      const r = await h.call('GET', '/metrics', METRICS_TOKEN);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
      const m = parseMetrics(r.text);
      assert.equal(value(m, 'herald_events_published_total'), expected.events);
      assert.equal(value(m, 'herald_deliveries_created_total'), expected.deliveries);
      for (const [outcome, n] of Object.entries(expected.outcomes)) assert.equal(value(m, 'herald_delivery_outcomes_total', { outcome }), n, outcome);
      assert.equal(value(m, 'herald_delivery_outcomes_total'), 55, 'no other outcome');
      for (const [k, n] of Object.entries(expected.attempts)) {
        const [status_class, error_kind] = k.split('/');
        assert.equal(value(m, 'herald_delivery_attempts_total', { status_class: status_class!, error_kind: error_kind! }), n, k);
      }
      assert.equal(value(m, 'herald_delivery_attempts_total'), 55, 'no other class');
      assert.equal(value(m, 'herald_delivery_attempt_duration_seconds_count'), 55);
      assert.equal(value(m, 'herald_delivery_attempt_duration_seconds_bucket', { le: '+Inf' }), 55);
      assert.equal(value(m, 'herald_delivery_latency_seconds_count'), 14, 'one latency per delivered delivery');
      // Retries took at least 50 ms each: the flaky deliveries' latencies are over 0.05 s.
      assert.ok(value(m, 'herald_delivery_latency_seconds_bucket', { le: '0.05' }) <= 7, 'retried deliveries are slower than 50 ms');
      assert.ok(value(m, 'herald_delivery_latency_seconds_sum') > 7 * 0.05);
      assert.equal(value(m, 'herald_store_commit_duration_seconds_count', { operation: 'publish' }), 9, 'one commit per publish call, the repeat included');
      const completes = value(m, 'herald_store_commit_duration_seconds_count', { operation: 'complete' });
      assert.ok(completes >= 1 && completes <= 55, `${completes} completion commits for 55 outcomes`);
      for (const state of ['due', 'scheduled', 'leased', 'in_line']) assert.equal(value(m, 'herald_queue_depth', { state }), 0, state);
      assert.ok(m.some((s) => s.name === 'herald_queue_depth' && s.labels.state === 'due'), 'queue depth is reported');
      assert.equal(value(m, 'herald_deliveries_in_flight'), 0);
      assert.equal(value(m, 'herald_sender_thread_restarts_total'), 0);
      assert.ok(m.some((s) => s.name === 'herald_sender_thread_restarts_total'), 'restarts are reported');
      // Only the two subscriptions that failed most are named: down (21 failures) and flaky (7).
      const failing = m.filter((s) => s.name === 'herald_subscription_failed_attempts_total');
      assert.deepEqual(failing.map((s) => [s.labels.subscription_id, s.labels.tenant_id, s.value]), [[ids.down, tenant.id, 21], [ids.flaky, tenant.id, 7]]);
      // Process figures come under Herald's prefix, and every name has it.
      assert.ok(value(m, 'herald_process_cpu_seconds_total') > 0);
      assert.deepEqual(m.filter((s) => !s.name.startsWith('herald_')), []);
    });

    test('one log line per attempt, with its ids, status and timing, and no secret, URL or body', () => {
      const lines = h.log.lines().filter((l) => l.msg === 'delivery attempt');
      assert.equal(lines.length, 55);
      for (const l of lines) {
        assert.equal(l.level, 30, 'info');
        for (const k of ['delivery_id', 'event_id', 'subscription_id', 'tenant_id', 'event_type']) assert.equal(typeof l[k], 'string', k);
        assert.ok(Number.isInteger(l.attempt) && l.attempt >= 1 && l.attempt <= 3);
        assert.equal(typeof l.duration_ms, 'number');
        assert.ok(['succeeded', 'retry', 'failed', 'gone'].includes(l.outcome), l.outcome);
        assert.deepEqual(Object.keys(l).filter((k) => /url|header|body|secret|token|data/i.test(k)), []);
      }
      const bySub = (id: string) => lines.filter((l) => l.subscription_id === id);
      assert.equal(bySub(ids.down!).length, 21);
      // Each delivery to `down` logged attempts 1, 2 and 3: 500, 500, 500, then failed.
      const oneDelivery = bySub(ids.down!).filter((l) => l.delivery_id === bySub(ids.down!)[0].delivery_id);
      assert.deepEqual(oneDelivery.map((l) => [l.attempt, l.status_code, l.error_kind, l.outcome]), [[1, 500, 'http_status', 'retry'], [2, 500, 'http_status', 'retry'], [3, 500, 'http_status', 'failed']]);
      assert.deepEqual([...new Set(bySub(ids.ok!).map((l) => `${l.status_code} ${l.error_kind} ${l.outcome}`))], ['200 null succeeded']);
      assert.deepEqual([...new Set(bySub(ids.dead!).map((l) => `${l.status_code} ${l.error_kind}`))], ['null connection']);
      assert.deepEqual(bySub(ids.gone!).map((l) => [l.status_code, l.outcome]), [[410, 'gone']]);
      const all = h.log.all();
      for (const s of secrets) assert.ok(!all.includes(s), `the log holds ${s.slice(0, 12)}...`);
    });

    test('/metrics needs its own token when one is set', async () => {
      const none = await h.call('GET', '/metrics', null);
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, 'unauthorized');
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      assert.equal((await h.call('GET', '/metrics', 'wrong-token')).status, 401);
      assert.equal((await h.call('GET', '/metrics', ADMIN)).status, 401, 'the admin token is not the metrics token');
      assert.equal((await h.call('GET', '/metrics', METRICS_TOKEN)).status, 200);
    });

    test('/readyz: ready with every migration; 503 naming one that is missing, ready again once it is back', async () => {
      const known = loadMigrations(engine).map((m) => m.version);
      const ok = await h.call('GET', '/readyz', null);
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body, { status: 'ready', store: engine, migrations: known });
      const last = known.at(-1)!;
      await onTheSide(h, engine, 'DELETE FROM herald_migrations WHERE version = $1', [last]);
      const missing = await h.call('GET', '/readyz', null);
      assert.equal(missing.status, 503);
      assert.deepEqual(missing.body, { status: 'not_ready', store: engine, reason: `migrations not applied: ${last}`, migrations: known.slice(0, -1) });
      assert.equal((await h.call('GET', '/healthz', null)).status, 200, 'liveness does not ask the store');
      await onTheSide(h, engine, 'INSERT INTO herald_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [last, 'restored', Date.now()]);
      assert.equal((await h.call('GET', '/readyz', null)).status, 200);
      // A schema newer than this build is not ready either.
      await onTheSide(h, engine, 'INSERT INTO herald_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [last + 100, 'from the future', Date.now()]);
      const newer = await h.call('GET', '/readyz', null);
      assert.equal(newer.status, 503);
      assert.equal(newer.body.reason, `migrations newer than this build: ${last + 100}`);
      await onTheSide(h, engine, 'DELETE FROM herald_migrations WHERE version = $1', [last + 100]);
    });

    test('queue depth tells due, scheduled, leased and in-line deliveries apart, and in flight counts what is being sent', async () => {
      // One at a time to a subscription, and as many again waiting here: a slow receiver holds
      // one delivery in flight and one claimed behind it, and leaves the rest due.
      const r = await start(engine, { HERALD_MAX_IN_FLIGHT_PER_ENDPOINT: '1' });
      const later = await new Receiver(() => ({ status: 503, headers: { 'retry-after': '3600' } })).start();
      const slow = await new Receiver(() => ({ status: 200, delayMs: 1500 })).start();
      try {
        const mk = async (name: string, url: string) => {
          const t = (await r.call('POST', '/admin/v1/tenants', ADMIN, { name })).body;
          const ep = (await r.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url })).body;
          return { tenant: t.id as string, endpoint: ep.id as string };
        };
        const a = await mk('Later', later.url);
        const b = await mk('Slow', slow.url);
        await r.call('POST', '/admin/v1/events', ADMIN, { tenant_id: a.tenant, entity: 'Employee', event: 'Add', entity_id: 'x' });
        await eventually(async () => (await r.call('GET', `/admin/v1/deliveries?subscription_id=${a.endpoint}`, ADMIN)).body.data[0]?.attempts === 1, 5000, 'the 503 to be recorded');
        // An ordered endpoint: the head of one entity's line gets the 503 too, and two wait behind it.
        const t3 = (await r.call('POST', '/admin/v1/tenants', ADMIN, { name: 'Line' })).body;
        const ordered = (await r.call('POST', '/api/v1/endpoints', t3.credentials.api_token, { url: later.url, ordering: 'entity' })).body;
        const line = [1, 2, 3].map(() => ({ tenant_id: t3.id, entity: 'Employee', event: 'Add', entity_id: 'y' }));
        assert.equal((await r.call('POST', '/admin/v1/events/batch', ADMIN, { events: line })).status, 202);
        await eventually(async () => (await r.call('GET', `/admin/v1/deliveries?subscription_id=${ordered.id}`, ADMIN)).body.data.some((d: any) => d.attempts === 1), 5000, 'the head\'s 503 to be recorded');
        const events = [1, 2, 3, 4].map((i) => ({ tenant_id: b.tenant, entity: 'Employee', event: 'Add', entity_id: String(i) }));
        assert.equal((await r.call('POST', '/admin/v1/events/batch', ADMIN, { events })).status, 202);
        // The receiver has the first request and holds it: scrape now, before it answers.
        await eventually(() => slow.received.length === 1, 5000, 'the first slow request to arrive');
        const m = parseMetrics((await r.call('GET', '/metrics', null)).text);
        assert.deepEqual(['due', 'scheduled', 'leased', 'in_line'].map((state) => value(m, 'herald_queue_depth', { state })), [2, 2, 2, 2]);
        assert.equal(value(m, 'herald_deliveries_in_flight'), 1);
      } finally {
        await r.stop();
        await Promise.all([later.stop(), slow.stop()]);
      }
    });

    test('/readyz is 503 when the store is closed, and /metrics still answers, without the queue depth', async () => {
      const r = await start(engine);
      try {
        assert.equal((await r.call('GET', '/readyz', null)).status, 200);
        await r.herald.store.close();
        const closed = await r.call('GET', '/readyz', null);
        assert.equal(closed.status, 503);
        assert.equal(closed.body.status, 'not_ready');
        assert.equal(closed.body.reason, 'the store refused the query (see the log)');
        const m = await r.call('GET', '/metrics', null);
        assert.equal(m.status, 200, 'open: no token is set');
        const samples = parseMetrics(m.text);
        assert.ok(!samples.some((s) => s.name === 'herald_queue_depth'), 'no figure rather than a wrong one');
        assert.ok(samples.some((s) => s.name === 'herald_deliveries_in_flight'));
      } finally {
        // The store is closed already: stopping must still work (closing is idempotent).
        await r.stop();
      }
    });
  });
}

describe('HERALD_METRICS=off', () => {
  test('no /metrics, nothing wrapped, and deliveries and /readyz work as before', async () => {
    const r = await start('sqlite', { HERALD_METRICS: 'off' });
    const rcv = await new Receiver().start();
    try {
      assert.equal(r.herald.metrics, null);
      assert.equal((await r.call('GET', '/metrics', null)).status, 404);
      assert.equal((await r.call('GET', '/readyz', null)).status, 200);
      const t = (await r.call('POST', '/admin/v1/tenants', ADMIN, { name: 'Off' })).body;
      assert.equal((await r.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rcv.url })).status, 201);
      assert.equal((await r.call('POST', '/admin/v1/events', ADMIN, { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' })).status, 202);
      await rcv.waitFor(1);
    } finally {
      await r.stop();
      await rcv.stop();
    }
  });
});

describe('sender thread restarts', () => {
  test('a sender thread that dies is counted once it is replaced, and delivery goes on', async () => {
    const r = await start('sqlite');
    const rcv = await new Receiver().start();
    try {
      // The thread inside Herald's sender (wrapped for `herald listen`), killed as a fatal error would.
      let sender = (r.herald as unknown as { sender: unknown }).sender as { inner?: unknown } | undefined;
      while (sender && !(sender instanceof ThreadedSender)) sender = sender.inner as typeof sender;
      assert.ok(sender instanceof ThreadedSender, 'Herald sends from a thread by default');
      await (sender as unknown as { worker: Worker }).worker.terminate();
      await eventually(() => (sender as ThreadedSender).restarts === 1, 5000, 'the thread to be replaced');
      const t = (await r.call('POST', '/admin/v1/tenants', ADMIN, { name: 'Restart' })).body;
      assert.equal((await r.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rcv.url })).status, 201);
      assert.equal((await r.call('POST', '/admin/v1/events', ADMIN, { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' })).status, 202);
      await rcv.waitFor(1);
      const m = parseMetrics((await r.call('GET', '/metrics', null)).text);
      assert.equal(value(m, 'herald_sender_thread_restarts_total'), 1);
    } finally {
      await r.stop();
      await rcv.stop();
    }
  });
});
