// The chaos suite's recording receiver counts an overlap (a delivery in flight twice at once)
// only when an earlier request for the same pair is still open once the receiver has read
// what already arrived: a loaded receiver may read a timed-out attempt's close and its retry in
// one turn of its loop, in either order. A request held open is still an overlap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { behaviours, RecordingReceiver } from './chaos/harness.ts';
import { eventually } from './helpers/receiver.ts';

function raw(base: string, path: string, key: string): string {
  const body = JSON.stringify({ data: { entity_id: key } });
  const host = new URL(base).host;
  return `POST ${path} HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

async function opened(base: string): Promise<Socket> {
  const u = new URL(base);
  const s = connect(Number(u.port), u.hostname);
  s.on('error', () => undefined);
  await new Promise<void>((ok) => s.once('connect', () => ok()));
  return s;
}

test('a request held open while another for the same pair arrives is an overlap; one whose close was already in is not', async () => {
  const rx = await RecordingReceiver.start();
  const sockets: Socket[] = [];
  try {
    const held = rx.route('held', behaviours.firstAttempts({ kind: 'stall', ms: 60_000 }));
    const path = new URL(held.url).pathname;
    const a = await opened(rx.base);
    sockets.push(a);
    a.write(raw(rx.base, path, 'k1'));
    await eventually(() => rx.openNow().some((o) => o.key === 'k1'), 5000, 'the first request open');
    const b = await opened(rx.base);
    sockets.push(b);
    b.write(raw(rx.base, path, 'k1'));
    await eventually(() => rx.routeRecord('held')!.overlapLog.length === 1, 5000, 'the overlap counted');

    // Many pairs whose first is closed by the sender just before the second is written, both
    // read by a receiver that was busy meanwhile: none is an overlap.
    const closing = rx.route('closing', behaviours.firstAttempts({ kind: 'stall', ms: 60_000 }));
    const cpath = new URL(closing.url).pathname;
    for (let i = 0; i < 20; i++) {
      const key = `c${i}`;
      const first = await opened(rx.base);
      const second = await opened(rx.base);
      sockets.push(first, second);
      first.write(raw(rx.base, cpath, key));
      await eventually(() => rx.openNow().some((o) => o.key === key), 5000, `${key} open`);
      first.destroy();
      second.write(raw(rx.base, cpath, key));
      // The receiver's loop is busy while both the close and the retry come in.
      const until = performance.now() + 30;
      while (performance.now() < until) { /* busy */ }
      await eventually(() => (rx.routeRecord('closing')!.arrivals.get(key) ?? 0) === 2, 5000, `${key} arrived twice`);
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(rx.routeRecord('closing')!.overlapLog.length, 0, 'a close already in before the second request is not an overlap');
    assert.equal(rx.routeRecord('held')!.overlapLog.length, 1);
  } finally {
    for (const s of sockets) s.destroy();
    await rx.stop();
  }
});
