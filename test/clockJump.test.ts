// Two Herald processes on PostgreSQL whose clocks jump forward past the lease while every
// delivery of a batch is in flight at a slow receiver: both clocks together, then only one
// (which then reads the other's live leases as run out). No delivery may be in flight twice
// at once. Before each dispatcher watched its own clock against the monotonic one, every
// delivery held by the other process was sent again at once (64 of 64).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pgEnabled } from './helpers/pg.ts';
import { runClockJump } from './helpers/clockStep.ts';

test('clocks jumping forward past the lease with deliveries in flight on two processes: no overlap', { skip: !pgEnabled && 'PostgreSQL not reachable', timeout: 90_000 }, async (t) => {
  const { row, rounds, errors } = await runClockJump({ rounds: 2, perRound: 32, holdMs: 700 });
  t.diagnostic(JSON.stringify(row));
  // A claim that failed would leave the leases alone too: the processes must have run cleanly.
  assert.deepEqual(errors, [], 'nothing logged at error level');
  assert.deepEqual(rounds.map((r) => r.jumped), ['both', 'B']);
  for (const r of rounds) assert.equal(r.sent.A + r.sent.B, 64 + r.extra, `every delivery of the round was sent once (${JSON.stringify(r)})`);
  // B's jump tests something only if A held what B could take over; and B, not full, claimed
  // what was published just after its jump (a claim that failed would leave leases alone too).
  assert.ok(rounds[1]!.sent.A >= 64 && rounds[1]!.sent.B > 0, `A held the round when B's clock jumped, B claimed meanwhile (${JSON.stringify(rounds[1])})`);
  assert.equal(row.events, 72);
  assert.equal(row.lost, 0, 'every delivery answered 2xx');
  assert.equal(row.overlaps, 0, 'no delivery in flight twice at once');
  assert.equal(row.duplicates, 0, 'none sent again');
  assert.equal(row.unaccepted, 0);
  assert.equal(row.storeFaults, 0, row.notes);
});
