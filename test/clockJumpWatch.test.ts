// The pieces behind "a clock that jumps forward does not take over live leases": the clock
// watch (its own clock against a monotonic one the test moves by hand) and the claim's lease
// cutoff on each engine. test/clockJump.test.ts runs them together in two processes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SteppedClock } from '../src/domain/clock.ts';
import type { NewEvent } from '../src/domain/model.ts';
import { ClockWatch, JUMP_TOLERANCE_MS } from '../src/dispatch/clockWatch.ts';
import { openStore } from '../src/store/open.ts';
import { dropSchema, engines, freshSchema, PG_URL } from './helpers/pg.ts';

const LEASE = 10_000;

/** A wall clock and a monotonic clock that move together unless the test steps the wall one. */
function clocks() {
  const base = 1_800_000_000_000;
  let mono = 5_000;
  const wall = { offset: 0, now: () => base + mono + wall.offset };
  return {
    wall,
    mono: () => mono,
    pass(ms: number) { mono += ms; },
    step(ms: number) { wall.offset += ms; },
  };
}

describe('ClockWatch', () => {
  test('a clock that keeps time with the monotonic clock, or drifts within the tolerance, has not jumped', () => {
    const c = clocks();
    const w = new ClockWatch(c.wall, LEASE, { mono: c.mono });
    for (let i = 0; i < 50; i++) {
      c.pass(1000);
      c.step(JUMP_TOLERANCE_MS / 100);
      const r = w.read();
      assert.equal(r.jumpMs, 0);
      assert.equal(r.leaseCutoff, r.now);
    }
  });

  test('a pause between reading the two clocks (a garbage collection) is no jump', () => {
    let t = 0;
    let pauseNext = false;
    // The pause happens right after a monotonic reading, before the wall clock is read.
    const mono = () => { const v = t; if (pauseNext) { t += 100; pauseNext = false; } return v; };
    const wall = { now: () => 1_700_000_000_000 + t };
    const w = new ClockWatch(wall, LEASE, { mono });
    t += 1000;
    pauseNext = true;
    const r = w.read();
    assert.equal(r.jumpMs, 0);
    assert.equal(r.leaseCutoff, r.now);
  });

  test('a forward jump holds the cutoff to the clock as it was for one lease of monotonic time, then ends', () => {
    const c = clocks();
    const w = new ClockWatch(c.wall, LEASE, { mono: c.mono });
    c.pass(2000);
    const before = w.read().now;
    c.step(120_000);
    c.pass(500);
    let r = w.read();
    assert.equal(r.jumpMs, 120_000);
    assert.equal(r.leaseCutoff, before + 500, 'the clock as it was, moved on by the time that passed');
    // Readings all through the lease keep the cutoff on the old time.
    for (let t = 500; t + 1000 < LEASE; t += 1000) {
      c.pass(1000);
      r = w.read();
      assert.equal(r.jumpMs, 120_000, `${t + 1000} ms after the jump`);
    }
    c.pass(2000);
    r = w.read();
    assert.equal(r.jumpMs, 0, 'a lease after the jump, the new time is taken at its word');
    assert.equal(r.leaseCutoff, r.now);
  });

  test('a jump between readings far apart is seen, and two jumps within a lease add up', () => {
    const c = clocks();
    const w = new ClockWatch(c.wall, LEASE, { mono: c.mono });
    // Nothing read for three leases, then the clock jumps just before the next reading.
    c.pass(3 * LEASE);
    c.step(60_000);
    assert.equal(w.read().jumpMs, 60_000);
    c.pass(1000);
    c.step(30_000);
    assert.equal(w.read().jumpMs, 90_000);
  });

  test('a backward step is no jump, and stepping back to where it was after one is none either', () => {
    const c = clocks();
    const w = new ClockWatch(c.wall, LEASE, { mono: c.mono });
    c.pass(1000);
    w.read();
    c.step(-180_000);
    c.pass(100);
    assert.equal(w.read().jumpMs, 0);
    c.pass(1000);
    c.step(180_000);
    // Back to the time it had: the leases written on the slow clock look longer, not shorter,
    // but its own readings say it gained three minutes in a lease, and it is careful.
    assert.equal(w.read().jumpMs, 180_000);
  });

  test('the cutoff is whole milliseconds, rounded down', () => {
    let mono = 1000.25;
    const wall = { now: () => 1_800_000_000_000 + Math.floor(mono) };
    const w = new ClockWatch(wall, LEASE, { mono: () => mono });
    mono += 700.5;
    wall.now = () => 1_800_000_000_000 + Math.floor(mono) + 120_000;
    const r = w.read();
    assert.ok(r.jumpMs > 119_000);
    assert.equal(r.leaseCutoff, Math.floor(r.leaseCutoff));
    assert.ok(r.leaseCutoff <= r.now - r.jumpMs);
  });
});

for (const engine of engines()) {
  test(`claimDue with a lease cutoff on ${engine}: run-out leases are taken over only if they ran out by the cutoff`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-cutoff-'));
    const schema = freshSchema();
    const clock = new SteppedClock();
    const store = await openStore({ databaseUrl: engine === 'postgres' ? PG_URL : null, databaseSchema: schema, dataDir: dir, clock });
    try {
      await store.migrate();
      await store.seedEventTypes([{ entity: 'Employee', event: 'Add', description: 'x' }]);
      const tenantId = (await store.createTenant('T', `c-${schema}`, { clientSecretHash: 'a', subscriptionKeyHash: `k-${schema}`, apiTokenHash: `t-${schema}` })).id;
      await store.createSubscription({
        tenantId, dialect: 'native', url: 'http://127.0.0.1:9/', description: '', filters: [], paused: false, enabled: true,
        status: 'active', secrets: [], headers: {}, properties: {},
      });
      const ev = (n: number): NewEvent => ({
        tenantId, entity: 'Employee', event: 'Add', entityId: String(n), entityUri: null, parentType: null, parentId: null,
        data: {}, occurredAt: Date.now(), idempotencyKey: null,
      });
      await store.publish([ev(1), ev(2)]);
      // One delivery on a long lease (a process still sending), one on a lease that is over.
      const [live] = await store.claimDue(1, 60_000);
      const [dead] = await store.claimDue(1, 1);
      assert.ok(live && dead);
      const before = clock.now() + 10;
      clock.step(120_000);
      await store.publish([ev(3)]);
      // Past both leases on the clock now; the cutoff is the clock as it was.
      const got = await store.claimDue(10, 60_000, undefined, { leaseCutoff: before });
      const ids = new Set(got.map((c) => c.delivery.id));
      assert.equal(got.length, 2, 'the new delivery and the lease that ran out before the cutoff');
      assert.ok(ids.has(dead.delivery.id), 'a lease that ran out by the cutoff is taken over');
      assert.ok(!ids.has(live.delivery.id), 'a lease still running at the cutoff is left alone');
      assert.equal(await store.complete(live, { startedAt: clock.now(), durationMs: 1, statusCode: 200, errorKind: null, error: null, responseBody: 'ok', worker: 't' }, { kind: 'succeeded' }), true, 'its holder records it');
      // A cutoff at or past now changes nothing: a second long-run-out lease is taken.
      await store.publish([ev(4)]);
      const [short] = await store.claimDue(1, 1);
      clock.step(1000);
      const again = await store.claimDue(10, 60_000, undefined, { leaseCutoff: clock.now() + 5000 });
      assert.deepEqual(again.map((c) => c.delivery.id), [short!.delivery.id]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      if (engine === 'postgres') await dropSchema(schema);
    }
  });
}
