// The sender thread: requests cross to a worker thread and answers come back to the right
// caller; the address guard, timeouts and answers behave there as in the main thread; a
// thread that dies fails what it held and is replaced; close lets in-flight work finish.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { parseCidrList } from '../src/dispatch/addressGuard.ts';
import { ThreadedSender } from '../src/dispatch/senderThread.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

describe('ThreadedSender', () => {
  let rx: Receiver;
  let port: number;
  const allowing = new ThreadedSender({ allowPrivateNetworks: parseCidrList('127.0.0.0/8'), requestTimeoutMs: 300, connectionsPerOrigin: 16 });
  const strict = new ThreadedSender({ allowPrivateNetworks: [], requestTimeoutMs: 300, connectionsPerOrigin: 4 });

  before(async () => {
    rx = await new Receiver((r) => {
      if (r.path.startsWith('/slow')) return { status: 200, body: 'late', delayMs: 800 };
      if (r.path === '/busy') return { status: 503, headers: { 'retry-after': '7' }, body: 'later' };
      return { status: 200, body: `got ${r.path}` };
    }).start();
    port = Number(new URL(rx.url).port);
  });

  after(async () => {
    await allowing.close();
    await strict.close();
    await rx.stop();
  });

  test('a POST crosses with its exact headers and body bytes, and its answer comes back', async () => {
    const body = JSON.stringify({ name: 'José', city: 'Zürich', 東京: '🎉' });
    const r = await allowing.post(`${rx.url}/hook?x=1`, { 'content-type': 'application/json', 'webhook-id': 'abc' }, body);
    assert.equal(r.errorKind, null, JSON.stringify(r));
    assert.equal(r.statusCode, 200);
    assert.equal(r.responseBody, 'got /hook?x=1');
    const got = rx.received.at(-1)!;
    assert.equal(got.headers['webhook-id'], 'abc');
    assert.ok(got.raw.equals(Buffer.from(body, 'utf8')), 'the same bytes');
  });

  test('a 503 keeps its status, Retry-After and body', async () => {
    const r = await allowing.post(`${rx.url}/busy`, {}, 'x');
    assert.equal(r.statusCode, 503);
    assert.equal(r.retryAfter, '7');
    assert.equal(r.responseBody, 'later');
    assert.equal(r.errorKind, 'http_status');
  });

  test('many requests made in one turn each get their own answer', async () => {
    const paths = Array.from({ length: 200 }, (_, i) => `/many/${i}`);
    const results = await Promise.all(paths.map((p) => allowing.post(rx.url + p, {}, p)));
    assert.deepEqual(results.map((r) => r.responseBody), paths.map((p) => `got ${p}`));
  });

  test('the guard works in the thread: a loopback address is refused there and nothing arrives', async () => {
    const before = rx.received.length;
    const byIp = await strict.post(`http://127.0.0.1:${port}/no`, {}, 'x');
    const byName = await strict.post(`http://localhost:${port}/no`, {}, 'x');
    assert.equal(byIp.errorKind, 'refused_address', JSON.stringify(byIp));
    assert.equal(byName.errorKind, 'refused_address', JSON.stringify(byName));
    assert.equal(rx.received.length, before);
  });

  test('the request timeout applies in the thread', async () => {
    const r = await allowing.post(`${rx.url}/slow/timeout`, {}, 'x');
    assert.equal(r.errorKind, 'timeout', JSON.stringify(r));
    assert.equal(r.statusCode, null);
  });

  test('a thread that dies fails what it held, and a new thread takes the next requests', async () => {
    const s = new ThreadedSender({ allowPrivateNetworks: parseCidrList('127.0.0.0/8'), requestTimeoutMs: 3000, connectionsPerOrigin: 4 });
    try {
      assert.equal((await s.post(`${rx.url}/warm`, {}, 'x')).statusCode, 200);
      const held = s.post(`${rx.url}/slow/held`, {}, 'x');
      await eventually(() => rx.received.some((r) => r.path === '/slow/held'), 5000, 'the held request to arrive');
      // The thread goes away as it would on a fatal error.
      await (s as unknown as { worker: Worker }).worker.terminate();
      const r = await held;
      assert.equal(r.errorKind, 'internal');
      assert.match(r.error ?? '', /sender thread/);
      let next = await s.post(`${rx.url}/after`, {}, 'x');
      const end = Date.now() + 5000;
      while (next.statusCode !== 200 && Date.now() < end) {
        await new Promise((ok) => setTimeout(ok, 50));
        next = await s.post(`${rx.url}/after`, {}, 'x');
      }
      assert.equal(next.statusCode, 200, JSON.stringify(next));
    } finally {
      await s.close();
    }
  });

  test('close lets an in-flight request finish; afterwards posts fail without sending', async () => {
    const s = new ThreadedSender({ allowPrivateNetworks: parseCidrList('127.0.0.0/8'), requestTimeoutMs: 3000, connectionsPerOrigin: 4 });
    const inFlight = s.post(`${rx.url}/slow/closing`, {}, 'x');
    await eventually(() => rx.received.some((r) => r.path === '/slow/closing'), 5000, 'the request to arrive');
    await s.close();
    const r = await inFlight;
    assert.equal(r.statusCode, 200, JSON.stringify(r));
    assert.equal(r.responseBody, 'late');
    const count = rx.received.length;
    const refused = await s.post(`${rx.url}/after-close`, {}, 'x');
    assert.equal(refused.errorKind, 'internal');
    assert.equal(rx.received.length, count);
  });
});
