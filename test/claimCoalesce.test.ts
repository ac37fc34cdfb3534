// Claims gathered under a stream of single publishes (HERALD_CLAIM_COALESCE_MS): each publish
// wakes the dispatcher, and without a least time between claims every event would cost a claim
// of its own (at 500 single publishes a second on SQLite, claims were a quarter of the main
// thread). Each claim the dispatcher makes is recorded on the way through the real store.
// An ordered line's next delivery has nothing to gather with: it is claimed at once. And a
// claim that filled only subscriptions now full waits for their refill rather than passing
// over their due rows at once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { pgEnabled } from './helpers/pg.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

const GAP = 1000;
const BATCH = 5;

type Claim = { at: number; want: number; got: number; leftOut: number };

function record(h: TestHerald): Claim[] {
  const log: Claim[] = [];
  const store = h.herald.store;
  const claimDue = store.claimDue.bind(store);
  store.claimDue = async (limit, leaseMs, room, ...rest) => {
    const at = performance.now();
    const got = await claimDue(limit, leaseMs, room, ...rest);
    // Subscriptions the claim had no room for, whose due rows it had to pass over.
    const leftOut = [...(room?.bySubscription.values() ?? [])].filter((n) => n <= 0).length;
    log.push({ at, want: limit, got: got.length, leftOut });
    return got;
  };
  return log;
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`claims under a stream of publishes on ${engine}`, { skip: engine === 'postgres' && !pgEnabled && 'PostgreSQL not reachable' }, () => {
    test('after a claim that came back short the next begins no sooner than the setting, however many publishes wake it; after a full claim the next follows at once', async () => {
      const rx = await new Receiver().start();
      const h = await startHerald(engine, { HERALD_CLAIM_COALESCE_MS: String(GAP), HERALD_CLAIM_BATCH: String(BATCH) });
      try {
        const log = record(h);
        const t = await h.tenant();
        assert.equal((await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: `${rx.url}/hook` })).status, 201);
        const publish = (i: number) => h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: `single-${i}` });
        // Single publishes, two waves, each just after a claim came back empty: every one wakes
        // the dispatcher, and each wave is gathered into the claim after the gap.
        for (const wave of [0, 1]) {
          const n = log.length;
          await eventually(() => log.slice(n).some((c) => c.got === 0), 10_000, 'an empty claim');
          await Promise.all([0, 1, 2, 3].map((i) => publish(wave * 10 + i)));
        }
        await rx.waitFor(8, 15_000);
        // A batch of 12: two full claims and a short one, without a gap after the full ones.
        const before = log.length;
        const batch = Array.from({ length: 12 }, (_, i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: `batch-${i}` }));
        assert.equal((await h.admin('POST', '/admin/v1/events/batch', { events: batch })).status, 202);
        await rx.waitFor(20, 15_000);
        const claims = [...log];
        assert.equal(claims.reduce((n, c) => n + c.got, 0), 20, 'each event claimed once');
        for (let i = 1; i < claims.length; i++) {
          const prev = claims[i - 1]!, cur = claims[i]!;
          // The timer may fire a fraction of a millisecond early.
          if (prev.got < prev.want) assert.ok(cur.at - prev.at >= GAP - 2, `claim ${i} began ${(cur.at - prev.at).toFixed(1)} ms after a short one: ${JSON.stringify(claims)}`);
        }
        const fulls = claims.slice(before).map((c, i) => ({ c, next: claims[before + i + 1] })).filter(({ c }) => c.got === c.want);
        assert.ok(fulls.length >= 2, `the batch filled at least two claims: ${JSON.stringify(claims.slice(before))}`);
        for (const { c, next } of fulls) {
          assert.ok(next && next.at - c.at < GAP, `a full claim was followed at once, not after the gap: ${JSON.stringify(claims.slice(before))}`);
        }
        assert.ok(claims.filter((c) => c.got > 0).length < 20, 'fewer claims took deliveries than there were events');
      } finally {
        await h.stop();
        await rx.stop();
      }
    });

    test('a full claim that filled only subscriptions now full is not followed by a claim that leaves them out; their refill is', async () => {
      // A subscription holds 2 in flight and 2 queued, and a claim takes 4: the first claim
      // fills it. Passing over a full subscription's due backlog reads every row of it (about
      // 100 ms a claim at 990,000 rows on SQLite), for nothing when no other has work.
      const rx = await new Receiver().start();
      const h = await startHerald(engine, {
        HERALD_MAX_IN_FLIGHT_PER_ENDPOINT: '2', HERALD_CLAIM_BATCH: '4', HERALD_CLAIM_COALESCE_MS: '0', HERALD_POLL_INTERVAL_MS: '60000',
      });
      try {
        const t = await h.tenant();
        assert.equal((await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: `${rx.url}/hook` })).status, 201);
        const log = record(h);
        const batch = Array.from({ length: 40 }, (_, i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: `b-${i}` }));
        assert.equal((await h.admin('POST', '/admin/v1/events/batch', { events: batch })).status, 202);
        await rx.waitFor(40, 15_000);
        const taking = log.filter((c) => c.got > 0);
        assert.equal(taking.reduce((n, c) => n + c.got, 0), 40, `each delivery claimed once: ${JSON.stringify(log)}`);
        assert.ok(taking.some((c) => c.got === c.want), `some claim was full: ${JSON.stringify(log)}`);
        assert.deepEqual(log.filter((c) => c.leftOut > 0), [], `no claim had to leave the full subscription out: ${JSON.stringify(log)}`);
      } finally {
        await h.stop();
        await rx.stop();
      }
    });

    test("the next delivery of an entity's line is claimed at once when the one before it is finished, not after the gap", async () => {
      const rx = await new Receiver().start();
      // The longest gap allowed, far longer than a step of the line takes here.
      const h = await startHerald(engine, { HERALD_CLAIM_COALESCE_MS: String(GAP) });
      try {
        const log = record(h);
        const t = await h.tenant();
        assert.equal((await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: `${rx.url}/hook`, ordering: 'entity' })).status, 201);
        const line = [0, 1, 2].map((i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: 'one', data: { step: i } }));
        assert.equal((await h.admin('POST', '/admin/v1/events/batch', { events: line })).status, 202);
        await rx.waitFor(3, 15_000);
        const taking = log.filter((c) => c.got > 0);
        assert.equal(taking.reduce((n, c) => n + c.got, 0), 3, `one at a time, each once: ${JSON.stringify(log)}`);
        assert.equal(taking.length, 3, 'each step of the line in a claim of its own');
        for (let i = 1; i < taking.length; i++) {
          const waited = taking[i]!.at - taking[i - 1]!.at;
          assert.ok(waited < GAP, `step ${i} was claimed ${waited.toFixed(0)} ms after the one before: ${JSON.stringify(log)}`);
        }
      } finally {
        await h.stop();
        await rx.stop();
      }
    });
  });
}
