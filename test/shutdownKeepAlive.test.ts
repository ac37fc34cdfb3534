// Stopping Herald does not wait out the keep-alive timeout for a client connection that was
// busy when the stop began: after its answer the connection is closed, and the stop goes on
// (it took about 70 s before, while the dispatcher kept claiming; found by the chaos suite's
// SIGTERM rolling restarts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { ADMIN, startHerald } from './helpers/herald.ts';

test('a stop with a keep-alive request in flight ends once it is answered, not at the keep-alive timeout', async () => {
  const t = await startHerald('sqlite');
  const agent = new Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
  let stopped = false;
  try {
    const tenant = await t.tenant();
    const body = JSON.stringify({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: '1' });
    const u = new URL(t.url);
    // Half the body now, the rest once the stop has begun: the connection is busy when it starts.
    const answered = new Promise<number>((resolve, reject) => {
      const req = request({ host: u.hostname, port: u.port, path: '/admin/v1/events', method: 'POST', agent,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => req.end(body.slice(10)), 300);
    });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    const stopping = t.stop().then(() => { stopped = true; });
    assert.equal(await answered, 202, 'the request in flight was answered');
    await Promise.race([stopping, new Promise((r) => setTimeout(r, 10_000))]);
    assert.ok(stopped, `stopped within 10 s (${Date.now() - t0} ms so far)`);
  } finally {
    agent.destroy();
    if (!stopped) await t.stop().catch(() => undefined);
  }
});
