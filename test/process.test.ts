// Herald as real processes: kill -9 loses nothing, SIGTERM drains, several processes share
// one PostgreSQL, and an idle dispatcher is woken by a publish in another process.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, testEnv } from './helpers/herald.ts';
import { HeraldProcess } from './helpers/child.ts';
import { engines, pgEnabled } from './helpers/pg.ts';
import { eventually, Receiver, sleep } from './helpers/receiver.ts';

async function call(base: string, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function setup(base: string, url: string) {
  const t = (await call(base, 'POST', '/admin/v1/tenants', ADMIN, { name: 'Acme' })).body;
  const ep = (await call(base, 'POST', '/api/v1/endpoints', t.credentials.api_token, { url })).body;
  assert.ok(ep.id, JSON.stringify(ep));
  return { tenant: t, endpoint: ep };
}

async function publishMany(base: string, tenantId: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 250) {
    const events = Array.from({ length: Math.min(250, n - i) }, (_, k) => ({ tenant_id: tenantId, entity: 'Employee', event: 'Add', entity_id: String(i + k) }));
    const r = await call(base, 'POST', '/admin/v1/events/batch', ADMIN, { events });
    assert.equal(r.status, 202);
    ids.push(...r.body.events.map((e: any) => e.id));
  }
  return ids;
}

for (const engine of engines()) {
  describe(`Herald processes on ${engine}`, () => {
    test('kill -9 with deliveries in flight, restart: every accepted event is delivered', async () => {
      const rx = await new Receiver(() => ({ status: 200, delayMs: 150 })).start();
      const { env, cleanup } = testEnv(engine, { HERALD_LEASE_SECONDS: '4', HERALD_REQUEST_TIMEOUT_MS: '1500', HERALD_MAX_IN_FLIGHT: '16' });
      try {
        let p = await HeraldProcess.start(env);
        const { tenant } = await setup(p.url, rx.url);
        const ids = await publishMany(p.url, tenant.id, 300);
        await rx.waitFor(20);
        p.kill('SIGKILL');
        const { signal } = await p.exited;
        assert.equal(signal, 'SIGKILL');
        const before = new Set(rx.received.map((r) => String(r.headers['webhook-id']))).size;
        assert.ok(before < ids.length, 'the kill came with work left to do');
        p = await HeraldProcess.start({ ...env, HERALD_PORT: '0' });
        await eventually(() => new Set(rx.received.map((r) => String(r.headers['webhook-id']))).size === ids.length, 60_000, 'all events delivered after restart');
        const got = new Set(rx.received.map((r) => String(r.headers['webhook-id'])));
        for (const id of ids) assert.ok(got.has(id), `event ${id} delivered`);
        await eventually(async () => (await call(p.url, 'GET', `/admin/v1/deliveries?tenant_id=${tenant.id}&status=pending&limit=1`, ADMIN)).body.data.length === 0, 30_000, 'no pending deliveries');
        const duplicates = rx.received.length - got.size;
        // At least once: a delivery in flight at the kill may arrive twice; the receiver dedupes on webhook-id.
        assert.ok(duplicates <= 16, `at most the in-flight ones arrive twice (got ${duplicates})`);
        p.kill('SIGTERM');
        assert.equal((await p.exited).code, 0);
      } finally {
        await rx.stop();
        await cleanup();
      }
    });

    test('SIGTERM stops claiming, lets the in-flight attempt finish and record, and exits 0', async () => {
      const rx = await new Receiver(() => ({ status: 200, delayMs: 800 })).start();
      const { env, cleanup } = testEnv(engine);
      try {
        let p = await HeraldProcess.start(env);
        const { tenant } = await setup(p.url, rx.url);
        const ev = (await call(p.url, 'POST', '/admin/v1/events', ADMIN, { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: '1' })).body;
        await rx.waitFor(1);
        p.kill('SIGTERM');
        const { code } = await p.exited;
        assert.equal(code, 0);
        p = await HeraldProcess.start({ ...env, HERALD_PORT: '0' });
        const rec = (await call(p.url, 'GET', `/admin/v1/events/${ev.id}`, ADMIN)).body;
        assert.equal(rec.deliveries[0].status, 'succeeded', 'the in-flight attempt was recorded before exit');
        assert.equal(rec.deliveries[0].attempt_log.length, 1);
        await sleep(300);
        assert.equal(rx.received.length, 1, 'not sent again after restart');
        p.kill('SIGTERM');
        assert.equal((await p.exited).code, 0);
      } finally {
        await rx.stop();
        await cleanup();
      }
    });
  });
}

describe('several processes on one PostgreSQL', { skip: !pgEnabled && 'PostgreSQL not reachable' }, () => {
  test('two processes share 1,000 events: each delivered, never in flight twice at once', async () => {
    let inFlight = new Set<string>();
    let overlaps = 0;
    const rx = await new Receiver((r) => {
      const id = String(r.headers['webhook-id']);
      if (inFlight.has(id)) overlaps++;
      inFlight.add(id);
      return { status: 200, delayMs: 5 + (id.charCodeAt(id.length - 1) % 10) };
    }).start();
    const answered = rx.respond;
    rx.respond = async (r, n) => {
      const out = await answered(r, n);
      setTimeout(() => inFlight.delete(String(r.headers['webhook-id'])), out.delayMs ?? 0);
      return out;
    };
    const { env, cleanup } = testEnv('postgres', { HERALD_MAX_IN_FLIGHT: '32' });
    try {
      const a = await HeraldProcess.start(env);
      const b = await HeraldProcess.start({ ...env });
      const { tenant } = await setup(a.url, rx.url);
      const ids = await publishMany(a.url, tenant.id, 1000);
      await eventually(() => new Set(rx.received.map((r) => String(r.headers['webhook-id']))).size === 1000, 60_000, '1000 events delivered');
      await sleep(300);
      const distinct = new Set(rx.received.map((r) => String(r.headers['webhook-id'])));
      for (const id of ids) assert.ok(distinct.has(id));
      const duplicates = rx.received.length - distinct.size;
      assert.equal(overlaps, 0, 'no delivery was in flight in two places at once');
      assert.equal(duplicates, 0, 'with no crash, nothing is delivered twice');
      // Both processes did part of the work.
      const workers = new Set<string>();
      const page = (await call(a.url, 'GET', `/admin/v1/deliveries?tenant_id=${tenant.id}&limit=500`, ADMIN)).body.data;
      for (const d of page.slice(0, 200)) {
        const one = (await call(a.url, 'GET', `/admin/v1/deliveries/${d.id}`, ADMIN)).body;
        for (const at of one.attempt_log) workers.add(at.worker);
      }
      assert.equal(workers.size, 2, `deliveries were made by both processes: ${[...workers].join(', ')}`);
      a.kill('SIGTERM');
      b.kill('SIGTERM');
      assert.equal((await a.exited).code, 0);
      assert.equal((await b.exited).code, 0);
    } finally {
      inFlight = new Set();
      await rx.stop();
      await cleanup();
    }
  });

  test('a publish in an API-only process wakes an idle dispatcher in another through NOTIFY', async () => {
    const rx = await new Receiver().start();
    const { env, cleanup } = testEnv('postgres', { HERALD_POLL_INTERVAL_MS: '60000' });
    try {
      const api = await HeraldProcess.start({ ...env, HERALD_DISPATCH: 'off' });
      const worker = await HeraldProcess.start({ ...env });
      const { tenant } = await setup(api.url, rx.url);
      await sleep(200);
      await call(api.url, 'POST', '/admin/v1/events', ADMIN, { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      // The worker polls only once a minute: arriving within seconds means NOTIFY woke it.
      await rx.waitFor(1, 10_000);
      // A burst of single publishes shares NOTIFYs (at most one each 5 ms a process), and the
      // last commit of the burst is still announced: every event arrives without a poll.
      await Promise.all(Array.from({ length: 20 }, (_, i) => call(api.url, 'POST', '/admin/v1/events', ADMIN, { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: `burst-${i}` })));
      await rx.waitFor(21, 10_000);
      api.kill('SIGTERM');
      worker.kill('SIGTERM');
      await api.exited;
      await worker.exited;
    } finally {
      await rx.stop();
      await cleanup();
    }
  });
});
