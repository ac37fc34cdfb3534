// Bulk recovery: a range of failed deliveries sent again, with filters, at a bounded rate,
// with progress, and carried on by a restarted Herald after kill -9. Real receivers on
// loopback; the ledger (attempts per delivery) says what the job did.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, startHerald, testEnv, type TestHerald } from './helpers/herald.ts';
import { HeraldProcess } from './helpers/child.ts';
import { engines } from './helpers/pg.ts';
import { eventually, Receiver, sleep } from './helpers/receiver.ts';

const RATE = 20;
/** What the runner does with RATE: a step every 100 ms re-queues RATE / 10. */
const PER_STEP = RATE / 10;

async function call(base: string, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Every delivery of a subscription, newest first, through the admin API. */
async function deliveries(base: string, subscriptionId: string): Promise<any[]> {
  const r = await call(base, 'GET', `/admin/v1/deliveries?subscription_id=${subscriptionId}&limit=500`, ADMIN);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.data;
}

const settled = async (base: string, sub: string, n: number) => {
  await eventually(async () => {
    const d = await deliveries(base, sub);
    return d.length === n && d.every((x) => x.status === 'succeeded' || x.status === 'failed');
  }, 20_000, `${n} deliveries settled`);
};

const entityOf = (body: string) => String(JSON.parse(body).data.entity_id);

for (const engine of engines()) {
  describe(`bulk recovery on ${engine}`, () => {
    let h: TestHerald;
    const receivers: Receiver[] = [];
    const receiver = async (respond?: ConstructorParameters<typeof Receiver>[0]) => { const r = await new Receiver(respond).start(); receivers.push(r); return r; };
    before(async () => {
      // One retry 50 ms later, then failed: each delivery fails in two attempts.
      h = await startHerald(engine, { HERALD_RETRY_SCHEDULE: '0.05', HERALD_RECOVERY_RATE_PER_SECOND: String(RATE), HERALD_POLL_INTERVAL_MS: '100' });
    });
    after(async () => { await h.stop(); await Promise.all(receivers.map((r) => r.stop())); });

    const endpoint = async (token: string, url: string) => {
      const r = await h.call('POST', '/api/v1/endpoints', token, { url });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body.id as string;
    };

    test('a range with a status filter reaches the receiver with exactly the failed ones, at the rate, with progress', async () => {
      const t = await h.tenant();
      // e0..e19 get 500, e20..e29 get 503, e30..e39 succeed; after the outage everything succeeds.
      let outage = true;
      const rx = await receiver((r) => {
        const n = Number(entityOf(r.body).slice(1));
        return { status: !outage || n >= 30 ? 200 : n < 20 ? 500 : 503 };
      });
      const sub = await endpoint(t.credentials.api_token, rx.url);
      const since = new Date(Date.now() - 1000).toISOString();
      for (let i = 0; i < 40; i++) await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: `e${i}` });
      await settled(h.url, sub, 40);
      const before = await deliveries(h.url, sub);
      assert.equal(before.filter((d) => d.status === 'failed').length, 30);
      const attemptsBefore = new Map(before.map((d) => [d.id, d.attempts]));
      outage = false;
      const seen = rx.received.length;

      const created = await h.admin('POST', '/admin/v1/recoveries', { subscription_id: sub, since, status_code: 500 });
      assert.equal(created.status, 202, JSON.stringify(created.body));
      assert.equal(created.body.total, 20);
      assert.equal(created.body.state, 'running');
      assert.equal(created.body.subscription_id, sub);
      const progress = new Set<number>();
      let job: any;
      await eventually(async () => {
        job = (await h.admin('GET', `/admin/v1/recoveries/${created.body.id}`)).body;
        progress.add(job.done);
        return job.state === 'done';
      }, 20_000, 'recovery done');
      assert.equal(job.done, 20);
      assert.equal(job.skipped, 0);
      assert.ok([...progress].some((n) => n > 0 && n < 20), `progress was reported on the way: ${[...progress]}`);
      // The ledger's sanity bound: 20 at PER_STEP a step, 100 ms apart, cannot take less than 900 ms.
      const took = Date.parse(job.finished_at) - Date.parse(job.created_at);
      assert.ok(took >= (20 / PER_STEP - 1) * 100 - 20, `the job took ${took} ms, faster than its rate allows`);

      await eventually(async () => (await deliveries(h.url, sub)).filter((d) => d.status === 'succeeded').length === 30, 10_000, 'the recovered ones succeeded');
      const resent = rx.received.slice(seen).map((r) => entityOf(r.body)).sort();
      assert.deepEqual(resent, Array.from({ length: 20 }, (_, i) => `e${i}`).sort(), 'exactly the ones that failed with 500, once each');
      for (const d of await deliveries(h.url, sub)) {
        if (d.status === 'failed') assert.equal(d.attempts, attemptsBefore.get(d.id), 'the 503 ones were left alone');
      }

      // Nothing left to do: a second job over the same range finds none of them failed.
      const again = await h.admin('POST', '/admin/v1/recoveries', { subscription_id: sub, since, status_code: 500 });
      assert.deepEqual([again.body.total, again.body.state], [0, 'done']);
    });

    test('a tenant-wide job with an error kind; paused subscriptions hold theirs; the tenant API and its limits', async () => {
      const t = await h.tenant();
      const other = await h.tenant('Other');
      const closed = await receiver();
      const closedUrl = closed.url;
      await closed.stop(); // a port with nothing listening: error kind connection
      const rx500 = await receiver(() => ({ status: 500 }));
      const dead = await endpoint(t.credentials.api_token, closedUrl);
      const failing = await endpoint(t.credentials.api_token, rx500.url);
      const since = new Date(Date.now() - 1000).toISOString();
      for (let i = 0; i < 4; i++) await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: `k${i}` });
      await settled(h.url, dead, 4);
      await settled(h.url, failing, 4);
      const seen500 = rx500.received.length;

      // The tenant's own API: every subscription of the tenant, only those that could not connect.
      const r = await h.call('POST', '/api/v1/recoveries', t.credentials.api_token, { since, error_kind: 'connection' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.deepEqual([r.body.total, r.body.subscription_id, r.body.tenant_id], [4, null, t.id]);
      await eventually(async () => (await h.call('GET', `/api/v1/recoveries/${r.body.id}`, t.credentials.api_token)).body.state === 'done', 10_000, 'done');
      await eventually(async () => (await deliveries(h.url, dead)).every((d) => d.status === 'failed' && d.attempts === 3), 10_000, 'one more attempt each');
      await sleep(200);
      assert.equal(rx500.received.length, seen500, 'the 500 ones were not asked for');
      assert.ok((await deliveries(h.url, failing)).every((d) => d.attempts === 2));

      // Another tenant cannot see the job, nor recover into someone else's endpoint.
      assert.equal((await h.call('GET', `/api/v1/recoveries/${r.body.id}`, other.credentials.api_token)).status, 404);
      assert.equal((await h.call('POST', `/api/v1/recoveries/${r.body.id}/cancel`, other.credentials.api_token)).status, 404);
      assert.equal((await h.call('GET', `/api/v1/recoveries/${r.body.id}`, t.credentials.api_token)).body.state, 'done', 'unchanged');
      const foreign = await h.call('POST', '/api/v1/recoveries', other.credentials.api_token, { since, endpoint_id: failing });
      assert.deepEqual([foreign.status, foreign.body.error.field], [422, 'endpoint_id']);
      assert.equal((await h.call('GET', '/api/v1/recoveries', other.credentials.api_token)).body.data.length, 0);

      // A paused subscription: what the job re-queues is held until it is resumed.
      assert.equal((await h.admin('POST', `/admin/v1/subscriptions/${failing}/pause`)).status, 200);
      rx500.respond = () => ({ status: 200 });
      const held = await h.admin('POST', '/admin/v1/recoveries', { tenant_id: t.id, since, status_code: 500 });
      assert.equal(held.body.total, 4);
      await eventually(async () => (await h.admin('GET', `/admin/v1/recoveries/${held.body.id}`)).body.state === 'done', 10_000, 'done');
      assert.ok((await deliveries(h.url, failing)).every((d) => d.status === 'held'), 'held while paused');
      await sleep(200);
      assert.equal(rx500.received.length, seen500, 'nothing sent while paused');
      await h.admin('POST', `/admin/v1/subscriptions/${failing}/resume`);
      await rx500.waitFor(seen500 + 4);
      await eventually(async () => (await deliveries(h.url, failing)).every((d) => d.status === 'succeeded'), 10_000, 'sent on resume');
      const listed = (await h.admin('GET', `/admin/v1/recoveries?tenant_id=${t.id}`)).body.data;
      assert.deepEqual(listed.map((j: any) => j.id), [held.body.id, r.body.id], 'newest first');
      const cancel = await h.admin('POST', `/admin/v1/recoveries/${held.body.id}/cancel`);
      assert.equal(cancel.status, 409, 'a finished job cannot be cancelled');
    });

    test('a cancelled job stops where it is', async () => {
      const t = await h.tenant();
      const rx = await receiver(() => ({ status: 500 }));
      const sub = await endpoint(t.credentials.api_token, rx.url);
      const since = new Date(Date.now() - 1000).toISOString();
      for (let i = 0; i < 20; i++) await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: `c${i}` });
      await settled(h.url, sub, 20);
      const job = (await h.admin('POST', '/admin/v1/recoveries', { subscription_id: sub, since })).body;
      await eventually(async () => (await h.admin('GET', `/admin/v1/recoveries/${job.id}`)).body.done >= PER_STEP, 10_000, 'started');
      const c = await h.admin('POST', `/admin/v1/recoveries/${job.id}/cancel`);
      assert.equal(c.status, 200, JSON.stringify(c.body));
      assert.equal(c.body.state, 'cancelled');
      assert.ok(c.body.done < 20, `cancelled at ${c.body.done}`);
      await sleep(400);
      const later = (await h.admin('GET', `/admin/v1/recoveries/${job.id}`)).body;
      assert.deepEqual([later.state, later.done], ['cancelled', c.body.done], 'no step after the cancel');
      await eventually(async () => (await deliveries(h.url, sub)).every((d) => d.status === 'failed'), 10_000, 'settled');
      assert.equal((await deliveries(h.url, sub)).filter((d) => d.attempts === 3).length, c.body.done, 'only what it had re-queued was sent');
    });

    test('refusals name the field and write nothing', async () => {
      const t = await h.tenant();
      const count = async () => (await h.admin('GET', `/admin/v1/recoveries?tenant_id=${t.id}`)).body.data.length;
      const cases: [unknown, number, string][] = [
        [{ tenant_id: t.id }, 400, 'since'],
        [{ since: 'yesterday', tenant_id: t.id }, 400, 'since'],
        [{ since: '2026-01-01T00:00:00Z' }, 400, 'subscription_id'],
        [{ since: '2026-01-01T00:00:00Z', tenant_id: t.id, subscription_id: t.id }, 400, 'tenant_id'],
        [{ since: '2026-01-01T00:00:00Z', until: '2025-01-01T00:00:00Z', tenant_id: t.id }, 400, 'until'],
        [{ since: '2026-01-01T00:00:00Z', tenant_id: t.id, status_code: 42 }, 400, 'status_code'],
        [{ since: '2026-01-01T00:00:00Z', tenant_id: t.id, error_kind: 'gremlins' }, 400, 'error_kind'],
        [{ since: '2026-01-01T00:00:00Z', tenant_id: t.id, colour: 'red' }, 400, 'colour'],
        [{ since: '2026-01-01T00:00:00Z', subscription_id: '0190a0a0-0000-7000-8000-000000000000' }, 422, 'subscription_id'],
        [{ since: '2026-01-01T00:00:00Z', tenant_id: 'nobody' }, 422, 'tenant_id'],
      ];
      for (const [body, status, field] of cases) {
        const r = await h.admin('POST', '/admin/v1/recoveries', body);
        assert.deepEqual([r.status, r.body.error?.field], [status, field], JSON.stringify(body));
      }
      assert.equal(await count(), 0);
      assert.equal((await h.admin('GET', '/admin/v1/recoveries/0190a0a0-0000-7000-8000-000000000000')).status, 404);
      assert.equal((await h.call('POST', '/admin/v1/recoveries', t.credentials.api_token, { tenant_id: t.id, since: '2026-01-01T00:00:00Z' })).status, 401);
    });
  });

  describe(`bulk recovery across a kill -9 on ${engine}`, () => {
    test('a restarted Herald carries on from the cursor, and sends none twice', async () => {
      let phase = 'outage';
      // After the outage, even-numbered events succeed and odd ones fail once more.
      const rx = await new Receiver((r) => ({ status: phase === 'outage' || Number(entityOf(r.body)) % 2 === 1 ? 500 : 200 })).start();
      const { env, cleanup } = testEnv(engine, {
        HERALD_RETRY_SCHEDULE: '0.05', HERALD_RECOVERY_RATE_PER_SECOND: '10', HERALD_LEASE_SECONDS: '2',
        HERALD_REQUEST_TIMEOUT_MS: '500', HERALD_POLL_INTERVAL_MS: '100',
      });
      let p: HeraldProcess | null = null;
      try {
        p = await HeraldProcess.start(env);
        const t = (await call(p.url, 'POST', '/admin/v1/tenants', ADMIN, { name: 'Acme' })).body;
        const sub = (await call(p.url, 'POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url })).body.id;
        const since = new Date(Date.now() - 1000).toISOString();
        const events = Array.from({ length: 40 }, (_, i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: String(i) }));
        assert.equal((await call(p.url, 'POST', '/admin/v1/events/batch', ADMIN, { events })).status, 202);
        await settled(p.url, sub, 40);
        phase = 'recovery';
        const job = (await call(p.url, 'POST', '/admin/v1/recoveries', ADMIN, { subscription_id: sub, since })).body;
        assert.equal(job.total, 40);
        let seen: any;
        await eventually(async () => (seen = (await call(p!.url, 'GET', `/admin/v1/recoveries/${job.id}`, ADMIN)).body).done >= 10, 20_000, 'a quarter done');
        p.kill('SIGKILL');
        await p.exited;
        assert.ok(seen.done < 40, `killed mid-job (${seen.done} of 40)`);

        p = await HeraldProcess.start({ ...env, HERALD_PORT: '0' });
        let end: any;
        await eventually(async () => (end = (await call(p!.url, 'GET', `/admin/v1/recoveries/${job.id}`, ADMIN)).body).state === 'done', 30_000, 'finished by the new process');
        assert.deepEqual([end.total, end.done, end.skipped], [40, 40, 0]);
        await eventually(async () => (await deliveries(p!.url, sub)).every((d) => d.status !== 'pending'), 10_000, 'all settled');
        const all = await deliveries(p.url, sub);
        // Two attempts before the job and exactly one because of it, for every delivery.
        assert.deepEqual([...new Set(all.map((d) => d.attempts))], [3], 'each sent once by the job');
        assert.equal(all.filter((d) => d.status === 'succeeded').length, 20);
        const after = rx.received.filter((r) => r.at > Date.parse(job.created_at)).map((r) => entityOf(r.body));
        assert.equal(new Set(after).size, 40, 'every one reached the receiver');
        // A delivery in flight at the kill may arrive twice (at least once); the job itself adds none.
        assert.ok(after.length - 40 <= 2, `duplicates: ${after.length - 40}`);
      } finally {
        if (p && p.child.exitCode === null && p.child.signalCode === null) { p.kill('SIGTERM'); await p.exited; }
        await rx.stop();
        await cleanup();
      }
    });
  });
}

test('the recovery runner backs off while the store cannot be reached, and warns once', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { default: pino } = await import('pino');
  const { openStore } = await import('../src/store/open.ts');
  const { RecoveryRunner } = await import('../src/dispatch/recoveryRunner.ts');
  const dir = mkdtempSync(join(tmpdir(), 'herald-recovery-'));
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
  const store = await openStore({ databaseUrl: null, databaseSchema: 'public', dataDir: dir });
  await store.migrate();
  await store.close(); // every query fails from now on
  const runner = new RecoveryRunner({ store, log, ratePerSecond: 10, leaseMs: 1000, pollIntervalMs: 5, worker: 'test', wake: () => {} });
  try {
    runner.start();
    await sleep(400);
  } finally {
    await runner.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const failures = lines.filter((l) => /looking for a recovery job failed/.test(l.msg));
  assert.equal(lines.filter((l) => l.level === 40).length, 1, 'one warning for the outage');
  // Without the backoff a 5 ms poll tries about 80 times in 400 ms; doubling waits try a handful.
  assert.ok(failures.length >= 2 && failures.length <= 10, `tries: ${failures.length}`);
});
