// The sender thread: requests cross to a worker thread and answers come back to the right
// caller; the address guard, timeouts and answers behave there as in the main thread; a
// thread that dies fails what it held and is replaced; close lets in-flight work finish.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { parseCidrList } from '../src/dispatch/addressGuard.ts';
import { ThreadedSender } from '../src/dispatch/senderThread.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

describe('ThreadedSender', () => {
  let rx: Receiver;
  let port: number;
  const allowing = new ThreadedSender({ allowPrivateNetworks: parseCidrList('127.0.0.0/8'), requestTimeoutMs: 5000, connectionsPerOrigin: 16 });
  const strict = new ThreadedSender({ allowPrivateNetworks: [], requestTimeoutMs: 5000, connectionsPerOrigin: 4 });
  const impatient = new ThreadedSender({ allowPrivateNetworks: parseCidrList('127.0.0.0/8'), requestTimeoutMs: 300, connectionsPerOrigin: 4 });

  before(async () => {
    rx = await new Receiver((r) => {
      if (r.path.startsWith('/slow')) return { status: 200, body: 'late', delayMs: 800 };
      if (r.path.startsWith('/stall')) return { status: 200, body: 'too late', delayMs: 2500 };
      if (r.path.startsWith('/big')) return { status: 204, delayMs: 200 };
      if (r.path === '/busy') return { status: 503, headers: { 'retry-after': '7' }, body: 'later' };
      return { status: 200, body: `got ${r.path}` };
    }).start();
    port = Number(new URL(rx.url).port);
  });

  after(async () => {
    await Promise.all([allowing.close(), strict.close(), impatient.close()]);
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
    // undici checks its timers about twice a second: the answer comes well after that.
    const r = await impatient.post(`${rx.url}/stall/timeout`, {}, 'x');
    assert.equal(r.errorKind, 'timeout', JSON.stringify(r));
    assert.equal(r.statusCode, null);
  });

  test('large bodies, many at once, fit in the thread', async () => {
    const body = 'x'.repeat(256 * 1024);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => allowing.post(`${rx.url}/big/${i}`, {}, body)));
    assert.deepEqual(results.filter((r) => r.statusCode !== 204), [], 'every one answered 204');
  });

  const threadOf = (s: ThreadedSender) => (s as unknown as { worker: Worker | null }).worker;

  test('a thread that dies fails what it held; requests made while it is replaced wait for the new one', async () => {
    const s = new ThreadedSender({ allowPrivateNetworks: parseCidrList('127.0.0.0/8'), requestTimeoutMs: 3000, connectionsPerOrigin: 4 });
    try {
      await s.ready;
      assert.equal((await s.post(`${rx.url}/warm`, {}, 'x')).statusCode, 200);
      const held = s.post(`${rx.url}/slow/held`, {}, 'x');
      await eventually(() => rx.received.some((r) => r.path === '/slow/held'), 5000, 'the held request to arrive');
      // The thread goes away as it would on a fatal error.
      await threadOf(s)!.terminate();
      const r = await held;
      assert.equal(r.errorKind, 'internal');
      assert.match(r.error ?? '', /sender thread/);
      assert.equal(threadOf(s), null, 'no thread during the pause');
      // Made during the pause: not failed, sent by the next thread.
      const during = await Promise.all([1, 2, 3].map((i) => s.post(`${rx.url}/during/${i}`, {}, 'x')));
      assert.deepEqual(during.map((x) => x.responseBody), [1, 2, 3].map((i) => `got /during/${i}`));
      // It dies again at once: the next pause is longer, and still nothing made meanwhile is failed.
      await threadOf(s)!.terminate();
      const again = await s.post(`${rx.url}/again`, {}, 'x');
      assert.equal(again.statusCode, 200, JSON.stringify(again));
    } finally {
      await s.close();
    }
  });

  test('close during a restart pause fails what waits and starts no thread', async () => {
    const s = new ThreadedSender({ allowPrivateNetworks: parseCidrList('127.0.0.0/8'), requestTimeoutMs: 3000, connectionsPerOrigin: 4 });
    await s.ready;
    await threadOf(s)!.terminate();
    const waiting = s.post(`${rx.url}/never`, {}, 'x');
    await Promise.all([s.close(), s.close()]);
    const r = await waiting;
    assert.equal(r.errorKind, 'internal');
    await new Promise((ok) => setTimeout(ok, 300));
    assert.equal(threadOf(s), null, 'no thread was started after close');
    assert.ok(!rx.received.some((x) => x.path === '/never'));
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

describe('a Herald with the sender thread', () => {
  test('stops completely: stop() resolves, the store is closed, and the process then exits by itself', () => {
    // In a process of its own, where nothing but Herald keeps the event loop alive.
    const script = `
      import { startHerald } from ${JSON.stringify(new URL('./helpers/herald.ts', import.meta.url).href)};
      const h = await startHerald('sqlite', { HERALD_SENDER_THREAD: 'on' });
      await h.stop();
      console.log('stopped; store open: ' + h.herald.store.db.db.isOpen);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /stopped; store open: false/);
  });
});
