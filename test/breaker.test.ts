// The per-subscription circuit breaker and Retry-After: a failing receiver gets no more
// than the breaker's threshold and its probes, gets everything once it recovers, and does not
// slow a healthy subscription beside it; a 429 with Retry-After waits without using up a
// retry while the schedule would have lasted, and one answered for ever still ends failed.
// Real receivers on loopback, both engines; time is shortened through settings.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Breakers } from '../src/dispatch/breaker.ts';
import { decideOutcome } from '../src/dispatch/dispatcher.ts';
import { bringBack, setAside } from '../src/store/queries/breaker.ts';
import type { SendResult } from '../src/dispatch/sender.ts';
import type { RetryPolicy } from '../src/domain/retry.ts';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { engines } from './helpers/pg.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

describe('Breakers (the state machine, on given times)', () => {
  const fail = { ok: false as const, retryAfterMs: null };
  test('opens after the threshold, lets one probe through per cool-down, doubles it up to the cap, and a 2xx closes it', () => {
    const b = new Breakers({ failures: 3, firstCoolMs: 1000, maxCoolMs: 3000 });
    for (let i = 0; i < 2; i++) b.answered('s', `d${i}`, fail, 0);
    assert.equal(b.isOpen('s'), false, 'two failures do not open it');
    b.answered('s', 'd2', fail, 10);
    assert.equal(b.isOpen('s'), true);
    assert.deepEqual([...b.room(10)], [['s', 0]], 'no claims while cooling down');
    assert.equal(b.mayStart('s', 'x', 500), false);
    assert.equal(b.nextProbeAt(), 1010);
    assert.deepEqual([...b.room(1010)], [['s', 1]], 'one probe once the cool-down is over');
    assert.equal(b.mayStart('s', 'p1', 1010), true);
    assert.equal(b.mayStart('s', 'other', 1010), false, 'one probe at a time');
    assert.deepEqual([...b.room(1010)], [['s', 0]]);
    b.answered('s', 'p1', fail, 1020);
    assert.equal(b.nextProbeAt(), 3020, 'a failed probe doubles the cool-down');
    assert.equal(b.mayStart('s', 'p2', 3020), true);
    b.answered('s', 'p2', fail, 3020);
    assert.equal(b.nextProbeAt(), 6020, 'capped at 3 s');
    assert.equal(b.mayStart('s', 'p3', 6020), true);
    b.released('s', 'p3');
    assert.equal(b.mayStart('s', 'p4', 6020), true, 'a probe handed back unsent frees the turn');
    b.answered('s', 'p4', { ok: true }, 6030);
    assert.equal(b.isOpen('s'), false);
    assert.equal(b.room(6030).size, 0);
    assert.equal(b.mayStart('s', 'any', 6030), true);
    for (let i = 0; i < 2; i++) b.answered('s', `e${i}`, fail, 7000);
    assert.equal(b.isOpen('s'), false, 'the run starts again from nothing after a 2xx');
  });

  test('Retry-After holds a subscription for as long as asked, then probes, whatever the threshold (even 0)', () => {
    const b = new Breakers({ failures: 0, firstCoolMs: 1000, maxCoolMs: 30_000 });
    for (let i = 0; i < 10; i++) b.answered('s', `d${i}`, fail, 0);
    assert.equal(b.isOpen('s'), false, 'threshold 0: failures never open it');
    b.answered('s', 'd', { ok: false, retryAfterMs: 5000 }, 100);
    assert.equal(b.isOpen('s'), true);
    assert.equal(b.nextProbeAt(), 5100);
    assert.equal(b.mayStart('s', 'x', 5099), false);
    assert.equal(b.mayStart('s', 'x', 5100), true);
    b.answered('s', 'x', { ok: true }, 5100);
    assert.equal(b.isOpen('s'), false);
  });

  test("a claim carrying the store's run of failures opens a breaker this process knew nothing of, and is its probe", () => {
    const b = new Breakers({ failures: 5, firstCoolMs: 1000, maxCoolMs: 30_000 });
    assert.equal(b.mayStart('s', 'a', 0, 4), true);
    assert.equal(b.isOpen('s'), false, 'a run shorter than the threshold opens nothing');
    assert.equal(b.mayStart('t', 'a', 0, 7), true, 'the first claim goes, as the probe');
    assert.equal(b.mayStart('t', 'b', 0, 7), false, 'the others of that claim go back');
    b.answered('t', 'a', { ok: true }, 1);
    assert.equal(b.mayStart('t', 'c', 2, 7), true, 'a stale run on a later claim does not reopen a breaker this process saw close');
    assert.equal(b.mayStart('t', 'd', 2, 7), true);
  });
});

describe('decideOutcome with Retry-After', () => {
  const policy: RetryPolicy = { scheduleSeconds: [10], jitter: 0, maxRetryAfterSeconds: 60 };
  const res = (statusCode: number | null, retryAfter?: string): SendResult => ({ statusCode, retryAfter, responseBody: null, errorKind: null, error: null, startedAt: 0, durationMs: 1 });
  test('free while the delivery is younger than the schedule span, bounded by maxRetryAfterSeconds; then every attempt counts', () => {
    const young = { attempts: 5, throttled: 5, createdAt: 0 };
    assert.deepEqual(decideOutcome(res(429, '3'), young, policy, 1000), { kind: 'retry', at: 4000, throttled: true });
    assert.deepEqual(decideOutcome(res(503, '600'), young, policy, 1000), { kind: 'retry', at: 61_000, throttled: true });
    assert.deepEqual(decideOutcome(res(500), young, policy, 1000), { kind: 'retry', at: 11_000 }, 'the free attempts used up no retry');
    assert.deepEqual(decideOutcome(res(429), young, policy, 1000), { kind: 'retry', at: 11_000 }, 'a 429 without Retry-After is a failure');
    assert.deepEqual(decideOutcome(res(429, '1'), young, policy, 10_000), { kind: 'failed' }, 'past the span the free attempts count');
    assert.deepEqual(decideOutcome(res(429, '1'), { attempts: 0, throttled: 0, createdAt: 0 }, policy, 10_000), { kind: 'retry', at: 11_000 },
      'past the span, a first Retry-After uses up a retry and waits as asked');
  });
});

for (const engine of engines()) {
  test(`deliveries behind an open breaker are set aside but for the oldest, using up nothing, and brought back due (${engine})`, async () => {
    const h = await startHerald(engine, { HERALD_DISPATCH: 'off' });
    try {
      const t = await h.tenant('Aside');
      const a = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: 'http://127.0.0.1:9/a', filters: ['Employee.Add'] });
      const b = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: 'http://127.0.0.1:9/b', filters: ['Employee.Update'] });
      assert.equal(a.status, 201);
      assert.equal(b.status, 201);
      const events = Array.from({ length: 150 }, (_, i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: String(i) }));
      assert.equal((await h.admin('POST', '/admin/v1/events/batch', { events })).status, 202);
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: 'other' });
      const store = h.herald.store;
      const until = store.clock.now() + 60_000;
      assert.equal(await setAside(store, a.body.id, until, 100), 50, 'all but the oldest 100 set aside');
      const rows = () => store.db.all<{ subscription_id: string; next_attempt_at: number; attempts: number; status: string }>(
        "SELECT subscription_id, next_attempt_at, attempts, status FROM deliveries WHERE status = 'pending'");
      const mine = (await rows()).filter((r) => r.subscription_id === a.body.id);
      assert.equal(mine.filter((r) => Number(r.next_attempt_at) === until).length, 50);
      assert.ok(mine.every((r) => Number(r.attempts) === 0), 'no attempt used');
      assert.equal((await rows()).filter((r) => r.subscription_id === b.body.id && Number(r.next_attempt_at) <= store.clock.now()).length, 1, 'another subscription is left alone');
      assert.equal(await setAside(store, a.body.id, until + 1, 100), 0, 'setting aside again moves nothing more');
      assert.equal(await bringBack(store, a.body.id, until), 50);
      const now = store.clock.now();
      assert.equal((await rows()).filter((r) => r.subscription_id === a.body.id && Number(r.next_attempt_at) <= now).length, 150, 'all due again');
    } finally {
      await h.stop();
    }
  });

  describe(`circuit breaker and Retry-After on ${engine}`, () => {
    const THRESHOLD = 3;
    const CAP = 2;
    const COOL_MS = 200;
    let h: TestHerald;
    const receivers: Receiver[] = [];
    const receiver = async (respond?: ConstructorParameters<typeof Receiver>[0]) => { const r = await new Receiver(respond).start(); receivers.push(r); return r; };
    before(async () => {
      h = await startHerald(engine, {
        HERALD_BREAKER_FAILURES: String(THRESHOLD), HERALD_BREAKER_MAX_SECONDS: String(COOL_MS / 1000),
        HERALD_MAX_IN_FLIGHT_PER_ENDPOINT: String(CAP), HERALD_RETRY_JITTER: '0', HERALD_POLL_INTERVAL_MS: '50',
        // Ten retries 0.1 s apart: without the breaker a failing receiver would get them all, for every delivery.
        HERALD_RETRY_SCHEDULE: Array(10).fill('0.1').join(','),
      });
    });
    after(async () => { await Promise.all(receivers.map((r) => r.stop())); await h.stop(); });

    const endpoint = async (token: string, url: string) => {
      const r = await h.call('POST', '/api/v1/endpoints', token, { url });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body.id as string;
    };
    const publish = async (tenantId: string, ids: string[]) => {
      const r = await h.admin('POST', '/admin/v1/events/batch', { events: ids.map((id) => ({ tenant_id: tenantId, entity: 'Employee', event: 'Add', entity_id: id })) });
      assert.equal(r.status, 202, JSON.stringify(r.body));
    };
    const entity = (body: string) => JSON.parse(body).data.entity_id as string;
    const deliveries = (sub: string) => h.herald.store.db.all<{ id: string; status: string; attempts: number; throttled: number; created_at: number }>(
      'SELECT id, status, attempts, throttled, created_at FROM deliveries WHERE subscription_id = $1', [sub]);

    test('a failing receiver gets at most the threshold, its in-flight cap and one probe per cool-down; after it recovers every delivery arrives; a healthy one beside it is unaffected', async () => {
      const state = { down: true };
      const bad = await receiver(() => ({ status: state.down ? 500 : 200 }));
      const good = await receiver(() => ({ status: 204 }));
      const tb = await h.tenant('Failing');
      const tg = await h.tenant('Healthy');
      const badSub = await endpoint(tb.credentials.api_token, bad.url);
      const goodSub = await endpoint(tg.credentials.api_token, good.url);
      const badIds = Array.from({ length: 20 }, (_, i) => `b${i}`);
      const goodIds = Array.from({ length: 60 }, (_, i) => `g${i}`);
      await publish(tb.id, badIds);
      await publish(tg.id, goodIds);
      // Down for as long as the healthy receiver takes, and for at least four cool-downs.
      await good.waitFor(goodIds.length, 15_000);
      await bad.waitFor(THRESHOLD + 4, 15_000);
      state.down = false;
      const downAttempts = bad.received.length;
      const window = bad.received.at(-1)!.at - bad.received[0]!.at;
      // Probes at least COOL_MS apart after the breaker opened: no more than the window holds.
      const probes = Math.floor(window / COOL_MS) + 1;
      assert.ok(downAttempts <= THRESHOLD + CAP + probes,
        `the failing receiver got ${downAttempts} attempts in ${window} ms; the breaker allows ${THRESHOLD} + ${CAP} in flight + ${probes} probes (without it: up to ${badIds.length * 11})`);

      await eventually(() => new Set(bad.received.filter((_, i) => i >= downAttempts).map((r) => entity(r.body))).size === badIds.length, 15_000, 'every delivery after the recovery');
      await eventually(async () => (await deliveries(badSub)).every((d) => d.status === 'succeeded'), 5000, 'all recorded succeeded');
      const failedBad = await deliveries(badSub);
      assert.ok(failedBad.every((d) => d.attempts <= 11), 'no delivery ran out of retries');
      // Deliveries that waited behind the breaker used no retry: only the probes and the first attempts failed.
      const failedAttempts = failedBad.reduce((n, d) => n + Number(d.attempts) - 1, 0);
      assert.equal(failedAttempts, downAttempts, 'every failed attempt is one the receiver saw while down');

      assert.deepEqual(good.received.map((r) => entity(r.body)).sort(), [...goodIds].sort(), 'the healthy receiver got each event once');
      const g = await deliveries(goodSub);
      assert.equal(g.length, goodIds.length);
      assert.ok(g.every((d) => d.status === 'succeeded' && Number(d.attempts) === 1), 'each healthy delivery succeeded at its first attempt');
    });

    test('429 with Retry-After uses up no retry: with one retry, four 429s and then a 200 deliver; attempt numbers count every attempt', async () => {
      const answers = ['0', '0', '1', '0'];
      const rx = await receiver((_r, n) => (n <= answers.length ? { status: 429, headers: { 'retry-after': answers[n - 1]! } } : { status: 200 }));
      // One retry, 5 s on: the 429s are free while the delivery is younger than that.
      const h1 = await startHerald(engine, { HERALD_RETRY_SCHEDULE: '5', HERALD_RETRY_JITTER: '0', HERALD_POLL_INTERVAL_MS: '50' });
      try {
        const t1 = await h1.tenant('Throttling');
        const r = await h1.call('POST', '/api/v1/endpoints', t1.credentials.api_token, { url: rx.url });
        assert.equal(r.status, 201);
        await h1.publish({ tenant_id: t1.id, entity: 'Employee', event: 'Add', entity_id: 'x' });
        await rx.waitFor(5, 15_000);
        let d: any;
        await eventually(async () => {
          [d] = await h1.herald.store.db.all('SELECT id, status, attempts, throttled FROM deliveries WHERE subscription_id = $1', [r.body.id]);
          return d?.status === 'succeeded';
        }, 5000, 'succeeded');
        assert.deepEqual([Number(d.attempts), Number(d.throttled)], [5, 4]);
        const detail = await h1.admin('GET', `/admin/v1/deliveries/${d.id}`);
        assert.equal(detail.status, 200);
        assert.equal(detail.body.attempts, 5, 'the delivery shows all five attempts');
        assert.deepEqual(detail.body.attempt_log.map((a: any) => [a.attempt, a.status_code]), [[1, 429], [2, 429], [3, 429], [4, 429], [5, 200]]);
        const listed = await h1.call('GET', `/api/v1/endpoints/${r.body.id}/attempts`, t1.credentials.api_token);
        assert.equal(listed.status, 200);
        assert.deepEqual(listed.body.data.map((a: any) => a.attempt).sort(), [1, 2, 3, 4, 5], 'the native dialect numbers them the same');
        assert.equal(rx.received.length, 5, 'nothing sent after the 200');
      } finally {
        await h1.stop();
      }
    });

    test('a receiver answering 429 for ever ends with a failed delivery once the schedule\'s span has passed', async () => {
      const rx = await receiver(() => ({ status: 429, headers: { 'retry-after': '0' } }));
      const h1 = await startHerald(engine, { HERALD_RETRY_SCHEDULE: '0.5,0.5', HERALD_RETRY_JITTER: '0', HERALD_POLL_INTERVAL_MS: '50' });
      try {
        const t1 = await h1.tenant('Forever');
        const r = await h1.call('POST', '/api/v1/endpoints', t1.credentials.api_token, { url: rx.url });
        assert.equal(r.status, 201);
        await h1.publish({ tenant_id: t1.id, entity: 'Employee', event: 'Add', entity_id: 'y' });
        let d: any;
        await eventually(async () => {
          [d] = await h1.herald.store.db.all('SELECT id, status, attempts, throttled, created_at FROM deliveries WHERE subscription_id = $1', [r.body.id]);
          return d?.status === 'failed';
        }, 10_000, 'failed');
        // How many fit in the span depends on the machine; that all but the last were free does not.
        assert.ok(Number(d.attempts) >= 2, `attempts: ${d.attempts}`);
        assert.equal(Number(d.throttled), Number(d.attempts) - 1, 'all but the last were free');
        // On Herald's clock: the failure was decided when the last answer came, and recorded after.
        const [row] = await h1.herald.store.db.all('SELECT updated_at FROM deliveries WHERE id = $1', [d.id]);
        assert.ok(Number(row!.updated_at) - Number(d.created_at) >= 1000, 'it failed only once the schedule\'s 1 s had passed');
        const n = rx.received.length;
        await new Promise((ok) => setTimeout(ok, 300));
        assert.equal(rx.received.length, n, 'nothing more is sent');
      } finally {
        await h1.stop();
      }
    });
  });
}
