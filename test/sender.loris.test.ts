// A receiver that answers 200 and then trickles its body a byte at a time, each gap shorter
// than the request timeout, never trips undici's per-wait timers. The attempt must still end
// within twice the timeout: the lease is sized by that bound, and past it another claimer
// could send the same delivery while this attempt is still open (found by the chaos suite).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { AddressGuard, parseCidrList } from '../src/dispatch/addressGuard.ts';
import { Sender } from '../src/dispatch/sender.ts';
import { ThreadedSender } from '../src/dispatch/senderThread.ts';

test('an answer trickled forever ends as a timeout within twice the request timeout, in either sender', async () => {
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.flushHeaders();
      const tick = () => {
        if (res.destroyed) return;
        res.write('.');
        const t = setTimeout(tick, 100);
        timers.add(t);
      };
      tick();
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/loris`;
  const inThread = new ThreadedSender({ allowPrivateNetworks: parseCidrList('127.0.0.0/8'), requestTimeoutMs: 400, connectionsPerOrigin: 4 });
  const here = new Sender(new AddressGuard(parseCidrList('127.0.0.0/8')), 400, 4);
  try {
    for (const sender of [here, inThread]) {
      const t0 = Date.now();
      const r = await sender.post(url, { 'content-type': 'application/json' }, '{}');
      const took = Date.now() - t0;
      assert.equal(r.errorKind, 'timeout', JSON.stringify(r));
      assert.equal(r.statusCode, null, 'a body cut short is no answer, whatever status came first');
      assert.ok(took >= 700 && took < 1500, `ended after ${took} ms (bound 800 ms)`);
    }
  } finally {
    for (const t of timers) clearTimeout(t);
    await Promise.all([here.close(), inThread.close()]);
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  }
});
