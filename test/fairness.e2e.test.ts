// The per-subscription cap, end to end on each engine and with either sender: a receiver
// never sees more than HERALD_MAX_IN_FLIGHT_PER_ENDPOINT requests at once, the cap is
// used in full, and a slow endpoint holding its slots does not hold back a healthy one.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from './helpers/pg.ts';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { Receiver } from './helpers/receiver.ts';

/** A receiver that answers after `delayMs` and records the most requests it held at once. */
async function countingReceiver(delayMs: number) {
  let open = 0;
  const state = { max: 0 };
  const rx = await new Receiver(() => {
    open++;
    state.max = Math.max(state.max, open);
    return new Promise((ok) => setTimeout(() => { open--; ok({ status: 204 }); }, delayMs));
  }).start();
  return { rx, state };
}

for (const engine of engines()) {
  for (const thread of ['on', 'off']) {
    describe(`per-subscription cap on ${engine}, sender thread ${thread}`, () => {
      let h: TestHerald;
      const receivers: Receiver[] = [];
      after(async () => {
        // Receivers first: the slow one's open requests then fail at once instead of being waited for.
        await Promise.all(receivers.map((r) => r.stop()));
        await h?.stop();
      });

      test('a receiver sees at most the cap at once, the cap is reached, and a slow endpoint does not hold back another', async () => {
        // With the sender in the main thread, PostgreSQL statements also go unprepared
        // (HERALD_DATABASE_PREPARED=off, as behind a pooler that cannot carry them).
        h = await startHerald(engine, { HERALD_MAX_IN_FLIGHT_PER_ENDPOINT: '3', HERALD_SENDER_THREAD: thread, HERALD_DATABASE_PREPARED: thread });
        const t = await h.tenant();
        const slow = await countingReceiver(10_000);
        const busy = await countingReceiver(40);
        receivers.push(slow.rx, busy.rx);
        for (const url of [slow.rx.url + '/slow', busy.rx.url + '/busy']) {
          const r = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url });
          assert.equal(r.status, 201, JSON.stringify(r.body));
        }
        const events = Array.from({ length: 30 }, (_, i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: String(i) }));
        const pub = await h.admin('POST', '/admin/v1/events/batch', { events });
        assert.equal(pub.status, 202, JSON.stringify(pub.body));
        // 30 answers at 40 ms each, three at a time, about 0.4 s; the slow endpoint answers
        // its first three only after 10 s.
        await busy.rx.waitFor(30, 8000);
        assert.equal(busy.state.max, 3, 'the healthy endpoint had exactly three requests at once');
        assert.equal(slow.state.max, 3, 'the slow endpoint holds its three slots');
        assert.ok(slow.rx.received.length <= 3, `the slow endpoint got ${slow.rx.received.length} requests`);
      });
    });
  }
}
