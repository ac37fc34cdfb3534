// A claim's lease starts when the store takes it, not when the dispatcher hears back: a claim
// that comes back slowly (a busy database) has less lease left than the dispatcher would think
// if it timed the lease from the answer, and an attempt sent on that belief can outlive the
// lease while another process sends the same delivery (seen under load by the chaos suite).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../src/config.ts';
import { Herald, makeLogger } from '../src/herald.ts';
import { ADMIN, testEnv } from './helpers/herald.ts';
import { pgEnabled } from './helpers/pg.ts';
import { eventually, sleep } from './helpers/receiver.ts';

test('a claim slow to come back is not sent on a lease that has run short', { skip: !pgEnabled && 'PostgreSQL not reachable' }, async () => {
  // The first arrival answers 200 and trickles its body for 1.5 s (inside the 2 s attempt bound);
  // later ones answer at once. A second request while one is open is an overlap.
  let open = 0, overlaps = 0, arrivals = 0, acks = 0;
  const log: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      arrivals++;
      if (open > 0) overlaps++;
      open++;
      const n = arrivals;
      log.push(`arrival ${n} at ${Date.now() % 100000}`);
      res.on('close', () => { open--; log.push(`closed ${n} at ${Date.now() % 100000}`); });
      if (arrivals > 1) { acks++; res.writeHead(200).end('ok'); return; }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.flushHeaders();
      const end = Date.now() + 1500;
      const tick = () => {
        if (res.destroyed) return;
        if (Date.now() >= end) { acks++; res.end('.'); return; }
        res.write('.');
        const t = setTimeout(tick, 200);
        timers.add(t);
      };
      tick();
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const { env, cleanup } = testEnv('postgres', { HERALD_REQUEST_TIMEOUT_MS: '1000', HERALD_LEASE_SECONDS: '2.5', HERALD_POLL_INTERVAL_MS: '100' });
  const heralds: Herald[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = loadConfig(env);
      const h = new Herald(c, makeLogger(c.logLevel));
      await h.start();
      heralds.push(h);
    }
    // The first claim that finds work comes back 1.6 s after the store leased it, whichever process made it.
    let delayed = false;
    for (const h of heralds) {
      const claimDue = h.store.claimDue.bind(h.store);
      h.store.claimDue = async (...args) => {
        const got = await claimDue(...args);
        if (got.length > 0 && !delayed) { delayed = true; log.push(`claimed by ${heralds.indexOf(h)} at ${Date.now() % 100000}`); await sleep(1600); }
        else if (got.length > 0) log.push(`claimed again by ${heralds.indexOf(h)} at ${Date.now() % 100000}`);
        return got;
      };
    }
    const call = async (path: string, token: string, body: unknown) => {
      const r = await fetch(heralds[0]!.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return (await r.json()) as any;
    };
    const tenant = await call('/admin/v1/tenants', ADMIN, { name: 'Acme' });
    await call('/api/v1/endpoints', tenant.credentials.api_token, { url });
    await call('/admin/v1/events', ADMIN, { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: '1' });
    await eventually(() => acks >= 1, 15_000, 'the delivery acknowledged');
    // Long enough for a second claimer to have come in after the short lease ran out.
    await sleep(1500);
    assert.ok(delayed, 'the first claim was slow to come back');
    assert.equal(overlaps, 0, `the delivery was never in flight twice at once: ${log.join(', ')}`);
    assert.equal(arrivals, 1, `the short-leased claim went back unsent, and the fresh claim sent it once: ${log.join(', ')}`);
  } finally {
    for (const h of heralds) await h.stop();
    for (const t of timers) clearTimeout(t);
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
    await cleanup();
  }
});
