// The clock-step scenario, small: Herald's clock stepped minutes forward and back while
// retries wait and attempts are in flight, on each engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from './helpers/pg.ts';
import { runClockStep } from './helpers/clockStep.ts';

for (const engine of engines()) {
  test(`clock steps of minutes forward and back on ${engine}: nothing lost, nothing early, no overlap`, { timeout: 60_000 }, async () => {
    const r = await runClockStep({ engine, perBatch: 20, subscriptions: 2, holdMs: 400 });
    assert.equal(r.events, 80);
    assert.ok(r.inFlightAtSteps.every((n) => n > 0), `each step caught attempts in flight (${r.inFlightAtSteps})`);
    assert.equal(r.waitedForBackStep, 0, 'every batch was in flight whole when the clock stepped');
    assert.ok(r.maxFirstWaitMs < 5000, `a first attempt waited ${r.maxFirstWaitMs} ms: publishes are due at once whatever the step`);
    assert.equal(r.lost, 0, 'every accepted delivery answered 2xx');
    assert.equal(r.unexpected, 0);
    assert.equal(r.overlaps, 0, 'no delivery in flight twice at once');
    assert.equal(r.earlyOnHeraldClock, 0, "no retry before its time on Herald's clock");
    assert.ok(r.maxRealEarlinessMs <= r.maxForwardStepMs, `a retry came ${r.maxRealEarlinessMs} ms early in real time, more than the step`);
    assert.equal(r.badTimestamps, 0, "webhook-timestamp is signed on Herald's clock");
    assert.equal(r.inconsistent, 0, 'every delivery succeeded and holds no lease');
    assert.equal(r.duplicates, 0);
    // Two attempts a pair, each on record.
    assert.equal(r.requests, 2 * 80 * 2);
    assert.equal(r.attemptsRecorded, r.requests);
  });
}
