// The clock-step scenario, small: Herald's clock stepped minutes forward and back while
// retries wait and attempts are in flight, on each engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from './helpers/pg.ts';
import { runClockStep } from './helpers/clockStep.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeraldProcess } from './helpers/child.ts';
import { ADMIN, testEnv } from './helpers/herald.ts';
import { Receiver, sleep } from './helpers/receiver.ts';
import { STEPPED_SERVE } from './helpers/steppedServe.ts';

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

test('a child Herald on a clock file: a step written to the file moves its retries and signatures', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-clock-'));
  const file = join(dir, 'offset');
  writeFileSync(file, '0');
  const got: { at: number; signedAt: number }[] = [];
  const rx = await new Receiver((r, n) => {
    got.push({ at: Date.now(), signedAt: Number(r.headers['webhook-timestamp']) * 1000 });
    return { status: n === 1 ? 500 : 200 };
  }).start();
  const { env, cleanup } = testEnv('sqlite', { HERALD_RETRY_SCHEDULE: '60', HERALD_RETRY_JITTER: '0', HERALD_TEST_CLOCK_FILE: file });
  const p = await HeraldProcess.start(env, STEPPED_SERVE);
  try {
    const call = async (method: string, path: string, token: string, body: unknown) => {
      const res = await fetch(p.url + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as any };
    };
    const t = await call('POST', '/admin/v1/tenants', ADMIN, { name: 'Clock' });
    assert.equal((await call('POST', '/api/v1/endpoints', t.body.credentials.api_token, { url: rx.url })).status, 201);
    assert.equal((await call('POST', '/admin/v1/events', ADMIN, { tenant_id: t.body.id, entity: 'Employee', event: 'Add', entity_id: '1' })).status, 202);
    await rx.waitFor(1);
    await sleep(500);
    assert.equal(got.length, 1, 'the retry waits its minute');
    writeFileSync(file, String(2 * 60_000));
    await rx.waitFor(2, 5000);
    assert.ok(got[1]!.at - got[0]!.at < 5000, 'the step made the retry due at once');
    assert.ok(Math.abs(got[0]!.signedAt - got[0]!.at) < 2000);
    assert.ok(Math.abs(got[1]!.signedAt - (got[1]!.at + 120_000)) < 2000, "the second signature is on the stepped clock");
  } finally {
    p.kill('SIGTERM');
    await p.exited;
    await rx.stop();
    await cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
