// End to end on each engine: a real Herald, real receivers on loopback, the public HTTP API.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import { engines } from './helpers/pg.ts';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { eventually, Receiver, sleep } from './helpers/receiver.ts';

const verifyBoth = (secret: string, r: { body: string; headers: Record<string, unknown> }) => {
  const h = { 'webhook-id': String(r.headers['webhook-id']), 'webhook-timestamp': String(r.headers['webhook-timestamp']), 'webhook-signature': String(r.headers['webhook-signature']) };
  new StandardWebhook(secret).verify(r.body, h);
  new SvixWebhook(secret).verify(r.body, { 'svix-id': h['webhook-id'], 'svix-timestamp': h['webhook-timestamp'], 'svix-signature': h['webhook-signature'] });
};

for (const engine of engines()) {
  describe(`native API on ${engine}`, () => {
    let h: TestHerald;
    const receivers: Receiver[] = [];
    const receiver = async (respond?: ConstructorParameters<typeof Receiver>[0]) => {
      const r = await new Receiver(respond).start();
      receivers.push(r);
      return r;
    };

    before(async () => { h = await startHerald(engine); });
    after(async () => {
      await h.stop();
      await Promise.all(receivers.map((r) => r.stop()));
    });

    const endpoint = async (token: string, body: Record<string, unknown>) => {
      const r = await h.call('POST', '/api/v1/endpoints', token, body);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };

    test('a published event arrives signed, and both Standard Webhooks libraries verify it', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      const ep = await endpoint(t.credentials.api_token, { url: rx.url + '/hook', description: 'main' });
      assert.match(ep.secret, /^whsec_[A-Za-z0-9+/=]{40,}$/);
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '42', entity_uri: 'v1/employees/42', parent_type: 'Company', parent_id: '7', data: { name: 'José', city: 'Zürich' } });
      assert.equal(ev.deliveries, 1);
      await rx.waitFor(1);
      const got = rx.received[0]!;
      assert.equal(got.path, '/hook');
      assert.equal(got.headers['content-type'], 'application/json');
      assert.equal(got.headers['webhook-id'], ev.id);
      verifyBoth(ep.secret, { body: got.body, headers: got.headers });
      const body = rx.json(0);
      assert.deepEqual(body, {
        id: ev.id, type: 'Employee.Add', timestamp: ev.occurred_at,
        data: { entity_id: '42', entity_uri: 'v1/employees/42', parent_type: 'Company', parent_id: '7', name: 'José', city: 'Zürich' },
      });
      // A forged signature is refused by the verifier: the check above can fail.
      assert.throws(() => verifyBoth('whsec_' + Buffer.alloc(32, 1).toString('base64'), { body: got.body, headers: got.headers }));
      await eventually(async () => (await h.admin('GET', `/admin/v1/events/${ev.id}`)).body.deliveries[0].status === 'succeeded');
      const rec = (await h.admin('GET', `/admin/v1/events/${ev.id}`)).body;
      assert.equal(rec.deliveries[0].attempt_log.length, 1);
      assert.equal(rec.deliveries[0].attempt_log[0].status_code, 200);
      assert.equal(rec.deliveries[0].attempt_log[0].response_body, 'ok');
    });

    test('5xx answers are retried on the configured schedule until a 2xx, every attempt on record', async () => {
      const t = await h.tenant();
      const rx = await receiver((_r, n) => (n <= 2 ? { status: 503, body: 'down' } : { status: 204 }));
      const ep = await endpoint(t.credentials.api_token, { url: rx.url });
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: '1' });
      await rx.waitFor(3);
      const ids = new Set(rx.received.map((r) => r.headers['webhook-id']));
      assert.deepEqual([...ids], [ev.id], 'webhook-id is stable across retries');
      // Schedule is 0.1 s, 0.2 s with ±20 % jitter: gaps are at least 80 % of that.
      assert.ok(rx.received[1]!.at - rx.received[0]!.at >= 80 - 5);
      assert.ok(rx.received[2]!.at - rx.received[1]!.at >= 160 - 5);
      for (const r of rx.received) verifyBoth(ep.secret, { body: r.body, headers: r.headers });
      await eventually(async () => (await h.call('GET', `/api/v1/endpoints/${ep.id}/deliveries`, t.credentials.api_token)).body.data[0]?.status === 'succeeded');
      const d = (await h.call('GET', `/api/v1/endpoints/${ep.id}/deliveries`, t.credentials.api_token)).body.data[0];
      assert.equal(d.attempts, 3);
      const attempts = (await h.call('GET', `/api/v1/endpoints/${ep.id}/attempts`, t.credentials.api_token)).body.data;
      assert.deepEqual(attempts.map((a: any) => a.status_code), [204, 503, 503], 'newest first');
      assert.equal(attempts[1].response_body, 'down');
    });

    test('after the last retry the delivery is failed and stays on record; an admin retry sends it again', async () => {
      const t = await h.tenant();
      let ok = false;
      const rx = await receiver(() => ({ status: ok ? 200 : 500 }));
      const ep = await endpoint(t.credentials.api_token, { url: rx.url });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '9' });
      await rx.waitFor(4); // first attempt + 3 retries
      await eventually(async () => (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${ep.id}&status=failed`)).body.data.length === 1);
      await sleep(600);
      assert.equal(rx.received.length, 4, 'nothing after the last retry');
      const failed = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${ep.id}`)).body.data[0];
      assert.equal(failed.status, 'failed');
      assert.equal(failed.last_status_code, 500);
      ok = true;
      const r = await h.admin('POST', `/admin/v1/deliveries/${failed.id}/retry`);
      assert.equal(r.status, 202);
      await rx.waitFor(5);
      await eventually(async () => (await h.admin('GET', `/admin/v1/deliveries/${failed.id}`)).body.status === 'succeeded');
      assert.equal((await h.admin('GET', `/admin/v1/deliveries/${failed.id}`)).body.attempt_log.length, 5);
      assert.equal((await h.admin('POST', '/admin/v1/deliveries/00000000-0000-7000-8000-000000000000/retry')).status, 404);
    });

    test('429 with Retry-After is honoured', async () => {
      const t = await h.tenant();
      const rx = await receiver((_r, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }));
      await endpoint(t.credentials.api_token, { url: rx.url });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await rx.waitFor(2);
      assert.ok(rx.received[1]!.at - rx.received[0]!.at >= 950, 'waited the Retry-After second, not the 0.1 s schedule');
    });

    test('410 Gone disables the endpoint; unpausing turns it back on', async () => {
      const t = await h.tenant();
      let gone = true;
      const rx = await receiver(() => ({ status: gone ? 410 : 200 }));
      const ep = await endpoint(t.credentials.api_token, { url: rx.url });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await rx.waitFor(1);
      await eventually(async () => (await h.call('GET', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token)).body.status === 'disabled');
      const e = (await h.call('GET', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token)).body;
      assert.equal(e.paused, true);
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '2' });
      await sleep(400);
      assert.equal(rx.received.length, 1, 'a disabled endpoint receives nothing');
      gone = false;
      const r = await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token, { paused: false });
      assert.equal(r.body.status, 'active');
      await rx.waitFor(2);
      assert.equal(rx.json(1).data.entity_id, '2', 'the held event goes out after re-enabling');
    });

    test('pause holds deliveries; resume delivers what was held, once', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      const ep = await endpoint(t.credentials.api_token, { url: rx.url, paused: true });
      assert.equal(ep.paused, true);
      for (let i = 0; i < 3; i++) await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: String(i) });
      await sleep(400);
      assert.equal(rx.received.length, 0);
      const held = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${ep.id}&status=held`)).body.data;
      assert.equal(held.length, 3);
      await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token, { paused: false });
      await rx.waitFor(3);
      await sleep(300);
      assert.equal(rx.received.length, 3);
      assert.deepEqual(rx.received.map((r) => JSON.parse(r.body).data.entity_id).sort(), ['0', '1', '2']);
      // Pausing again holds new events.
      await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token, { paused: true });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '3' });
      await sleep(300);
      assert.equal(rx.received.length, 3);
    });

    test('filters choose which events an endpoint receives; no filter means all', async () => {
      const t = await h.tenant();
      const [a, b, c] = [await receiver(), await receiver(), await receiver()];
      await endpoint(t.credentials.api_token, { url: a.url, filters: ['Employee.Add'] });
      await endpoint(t.credentials.api_token, { url: b.url, filters: ['Payroll.*'] });
      await endpoint(t.credentials.api_token, { url: c.url });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: '1' });
      await h.publish({ tenant_id: t.id, entity: 'Payroll', event: 'submitted', entity_id: 'p1' });
      await c.waitFor(3);
      await a.waitFor(1);
      await b.waitFor(1);
      await sleep(300);
      assert.deepEqual(a.received.map((r) => JSON.parse(r.body).type), ['Employee.Add']);
      assert.deepEqual(b.received.map((r) => JSON.parse(r.body).type), ['Payroll.submitted']);
      assert.equal(c.received.length, 3);
      const bad = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: a.url, filters: ['Employee.Fly'] });
      assert.equal(bad.status, 422);
      assert.equal(bad.body.error.field, 'filters');
      assert.match(bad.body.error.message, /Employee\.Fly/);
    });

    test('publishing with an idempotency key twice creates one event and one delivery', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      await endpoint(t.credentials.api_token, { url: rx.url });
      const e = { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '5', idempotency_key: 'k-1' };
      const first = await h.publish(e);
      const second = await h.publish(e);
      assert.equal(second.id, first.id);
      assert.equal(second.duplicate, true);
      assert.equal(first.duplicate, false);
      const batch = await h.admin('POST', '/admin/v1/events/batch', { events: [e, { ...e, idempotency_key: 'k-2' }, { ...e, idempotency_key: 'k-2' }] });
      assert.equal(batch.status, 202);
      assert.equal(batch.body.events[0].id, first.id);
      assert.equal(batch.body.events[2].id, batch.body.events[1].id);
      await rx.waitFor(2);
      await sleep(300);
      assert.equal(rx.received.length, 2, 'k-1 once, k-2 once');
      const other = await h.tenant('Other');
      const third = await h.publish({ ...e, tenant_id: other.id });
      assert.notEqual(third.id, first.id, 'keys are per tenant');
    });

    test('an event not in the catalog is refused with 422 naming it; the catalog can be extended', async () => {
      const t = await h.tenant();
      const r = await h.admin('POST', '/admin/v1/events', { tenant_id: t.id, entity: 'Invoice', event: 'Paid', entity_id: '1' });
      assert.equal(r.status, 422);
      assert.equal(r.body.error.field, 'event');
      assert.match(r.body.error.message, /Invoice\.Paid/);
      const add = await h.admin('POST', '/admin/v1/event-types', { entity: 'Invoice', event: 'Paid', description: 'An invoice was paid.' });
      assert.equal(add.status, 201);
      const again = await h.admin('POST', '/admin/v1/event-types', { entity: 'Invoice', event: 'Paid', description: 'Paid in full.' });
      assert.equal(again.status, 200);
      const list = (await h.admin('GET', '/admin/v1/event-types')).body.data;
      assert.ok(list.some((x: any) => x.entity === 'Invoice' && x.description === 'Paid in full.'));
      for (const [entity, event] of [['Employee', 'Add'], ['Employee', 'Update'], ['Employee', 'created'], ['Employee', 'updated'], ['Payroll', 'submitted']]) {
        assert.ok(list.some((x: any) => x.entity === entity && x.event === event), `${entity} ${event} is in the default catalog`);
      }
      assert.equal((await h.admin('POST', '/admin/v1/events', { tenant_id: t.id, entity: 'Invoice', event: 'Paid', entity_id: '1' })).status, 202);
      const unknownTenant = await h.admin('POST', '/admin/v1/events', { tenant_id: 'nope', entity: 'Employee', event: 'Add', entity_id: '1' });
      assert.equal(unknownTenant.status, 422);
      assert.equal(unknownTenant.body.error.field, 'tenant_id');
    });

    test('a tenant never sees or changes another tenant\'s endpoints', async () => {
      const a = await h.tenant('A');
      const b = await h.tenant('B');
      const rx = await receiver();
      const ep = await endpoint(a.credentials.api_token, { url: rx.url });
      const tb = b.credentials.api_token;
      assert.equal((await h.call('GET', `/api/v1/endpoints/${ep.id}`, tb)).status, 404);
      assert.equal((await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, tb, { paused: true })).status, 404);
      assert.equal((await h.call('PUT', `/api/v1/endpoints/${ep.id}`, tb, { url: rx.url })).status, 404);
      assert.equal((await h.call('DELETE', `/api/v1/endpoints/${ep.id}`, tb)).status, 404);
      assert.equal((await h.call('POST', `/api/v1/endpoints/${ep.id}/rotate-secret`, tb)).status, 404);
      assert.equal((await h.call('GET', `/api/v1/endpoints/${ep.id}/deliveries`, tb)).status, 404);
      assert.equal((await h.call('GET', `/api/v1/endpoints/${ep.id}/attempts`, tb)).status, 404);
      assert.deepEqual((await h.call('GET', '/api/v1/endpoints', tb)).body.data, []);
      // B's events never reach A's endpoint.
      await h.publish({ tenant_id: b.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await sleep(300);
      assert.equal(rx.received.length, 0);
      assert.equal((await h.call('GET', `/api/v1/endpoints/${ep.id}`, a.credentials.api_token)).status, 200);
    });

    test('secret rotation: both secrets sign during the grace period, then only the new one', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      const tok = t.credentials.api_token;
      const ep = await endpoint(tok, { url: rx.url });
      const rot = await h.call('POST', `/api/v1/endpoints/${ep.id}/rotate-secret`, tok);
      assert.equal(rot.status, 200);
      const fresh = rot.body.secret;
      assert.notEqual(fresh, ep.secret);
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await rx.waitFor(1);
      const r1 = rx.received[0]!;
      assert.equal(String(r1.headers['webhook-signature']).split(' ').length, 2);
      verifyBoth(ep.secret, { body: r1.body, headers: r1.headers });
      verifyBoth(fresh, { body: r1.body, headers: r1.headers });
      // The endpoint's secret is never shown again.
      const got = (await h.call('GET', `/api/v1/endpoints/${ep.id}`, tok)).body;
      assert.equal(got.secret, undefined);
      assert.ok(!JSON.stringify((await h.call('GET', '/api/v1/endpoints', tok)).body).includes('whsec_'));
    });

    test('a rotated-out secret stops signing after the grace period', async () => {
      const short = await startHerald(engine, { HERALD_SECRET_ROTATION_GRACE_SECONDS: '0' });
      try {
        const t = await short.tenant();
        const rx = await receiver();
        const tok = t.credentials.api_token;
        const ep = (await short.call('POST', '/api/v1/endpoints', tok, { url: rx.url })).body;
        const fresh = (await short.call('POST', `/api/v1/endpoints/${ep.id}/rotate-secret`, tok)).body.secret;
        await short.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
        await rx.waitFor(1);
        const r = rx.received[0]!;
        assert.equal(String(r.headers['webhook-signature']).split(' ').length, 1);
        verifyBoth(fresh, { body: r.body, headers: r.headers });
        assert.throws(() => verifyBoth(ep.secret, { body: r.body, headers: r.headers }));
      } finally {
        await short.stop();
      }
    });

    test('endpoints: list, get, PUT replaces, PATCH changes part, DELETE cancels what waits', async () => {
      const t = await h.tenant();
      const tok = t.credentials.api_token;
      const rx = await receiver();
      const ep = await endpoint(tok, { url: rx.url, description: 'one', filters: ['Employee.Add'] });
      assert.equal((await h.call('GET', '/api/v1/endpoints', tok)).body.data.length, 1);
      const put = await h.call('PUT', `/api/v1/endpoints/${ep.id}`, tok, { url: rx.url + '/v2' });
      assert.equal(put.status, 200);
      assert.deepEqual([put.body.url, put.body.description, put.body.filters, put.body.paused], [rx.url + '/v2', '', [], false]);
      const patch = await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, tok, { description: 'two', paused: true });
      assert.deepEqual([patch.body.url, patch.body.description, patch.body.paused], [rx.url + '/v2', 'two', true]);
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      assert.equal((await h.call('DELETE', `/api/v1/endpoints/${ep.id}`, tok)).status, 204);
      assert.equal((await h.call('GET', `/api/v1/endpoints/${ep.id}`, tok)).status, 404);
      const ds = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${ep.id}`)).body.data;
      assert.equal(ds.length, 1);
      assert.equal(ds[0].status, 'cancelled');
      await sleep(300);
      assert.equal(rx.received.length, 0);
    });

    test('delivery lists page newest first', async () => {
      const t = await h.tenant();
      const tok = t.credentials.api_token;
      const rx = await receiver();
      const ep = await endpoint(tok, { url: rx.url, paused: true });
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: String(i) })).id);
      const p1 = (await h.call('GET', `/api/v1/endpoints/${ep.id}/deliveries?limit=2`, tok)).body;
      assert.equal(p1.data.length, 2);
      assert.ok(p1.next_cursor);
      const p2 = (await h.call('GET', `/api/v1/endpoints/${ep.id}/deliveries?limit=2&cursor=${p1.next_cursor}`, tok)).body;
      const p3 = (await h.call('GET', `/api/v1/endpoints/${ep.id}/deliveries?limit=2&cursor=${p2.next_cursor}`, tok)).body;
      const seen = [...p1.data, ...p2.data, ...p3.data].map((d: any) => d.event_id);
      assert.deepEqual(seen, [...ids].reverse());
      assert.equal(p3.next_cursor, null);
    });

    test('tenants: list, get, delete; a deleted tenant\'s token stops working', async () => {
      const t = await h.tenant('Gone Co');
      assert.ok((await h.admin('GET', '/admin/v1/tenants')).body.data.some((x: any) => x.id === t.id));
      const one = await h.admin('GET', `/admin/v1/tenants/${t.id}`);
      assert.equal(one.body.name, 'Gone Co');
      assert.equal(one.body.credentials, undefined, 'credentials are shown only at creation');
      assert.ok(!JSON.stringify(one.body).includes(t.credentials.client_secret));
      assert.equal((await h.admin('DELETE', `/admin/v1/tenants/${t.id}`)).status, 204);
      assert.equal((await h.admin('GET', `/admin/v1/tenants/${t.id}`)).status, 404);
      assert.equal((await h.call('GET', '/api/v1/endpoints', t.credentials.api_token)).status, 401);
    });
  });
}

describe('address rules', () => {
  test('without the allow-list a loopback URL is refused with 422 on url, and nothing is saved', async () => {
    const h = await startHerald('sqlite', { HERALD_ALLOW_PRIVATE_NETWORKS: '' });
    const rx = await new Receiver().start();
    try {
      const t = await h.tenant();
      for (const url of [rx.url, rx.url.replace('127.0.0.1', 'localhost'), 'http://[::1]/x', 'http://[::ffff:127.0.0.1]/x', 'http://10.0.0.1/x', 'http://169.254.169.254/latest']) {
        const r = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url });
        assert.equal(r.status, 422, url);
        assert.equal(r.body.error.field, 'url');
      }
      assert.deepEqual((await h.call('GET', '/api/v1/endpoints', t.credentials.api_token)).body.data, []);
      // Public addresses are fine, IPv4 and IPv6 alike.
      for (const url of ['http://8.8.8.8/hook', 'https://[2606:4700:4700::1111]/hook']) {
        const r = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url });
        assert.equal(r.status, 201, `${url}: ${JSON.stringify(r.body)}`);
      }
    } finally {
      await h.stop();
      await rx.stop();
    }
  });
});

describe('wake-up', () => {
  test('a publish wakes an idle dispatcher in the same process without waiting for the poll', async () => {
    const h = await startHerald('sqlite', { HERALD_POLL_INTERVAL_MS: '60000' });
    const rx = await new Receiver().start();
    try {
      const t = await h.tenant();
      await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url });
      await sleep(100);
      const t0 = Date.now();
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      // The poll is a minute away: arriving within seconds means the publish woke it.
      await rx.waitFor(1, 10_000);
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      await h.stop();
      await rx.stop();
    }
  });
});

describe('failures the dispatcher records', () => {
  test('a redirect is not followed, a slow answer times out, a closed port is a connection error', async () => {
    const h = await startHerald('sqlite', { HERALD_REQUEST_TIMEOUT_MS: '300', HERALD_RETRY_SCHEDULE: '60' });
    const target = await new Receiver().start();
    const redirect = await new Receiver(() => ({ status: 302, headers: { location: target.url + '/elsewhere' } })).start();
    const slow = await new Receiver(() => ({ status: 200, delayMs: 1500 })).start();
    const closed = await new Receiver().start();
    const closedUrl = closed.url;
    await closed.stop();
    try {
      const t = await h.tenant();
      const tok = t.credentials.api_token;
      const ids: Record<string, string> = {};
      for (const [name, url] of [['redirect', redirect.url], ['slow', slow.url], ['closed', closedUrl]] as const) {
        ids[name] = (await h.call('POST', '/api/v1/endpoints', tok, { url })).body.id;
      }
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      const firstAttempt = async (name: string) => {
        let a: any;
        await eventually(async () => {
          a = (await h.call('GET', `/api/v1/endpoints/${ids[name]}/attempts`, tok)).body.data[0];
          return a !== undefined;
        }, 10_000, `an attempt for ${name}`);
        return a;
      };
      const r = await firstAttempt('redirect');
      assert.equal(r.status_code, 302);
      assert.equal(r.error_kind, 'http_status');
      assert.equal(target.received.length, 0, 'the redirect was not followed');
      const s = await firstAttempt('slow');
      assert.equal(s.status_code, null);
      assert.equal(s.error_kind, 'timeout');
      assert.ok(s.duration_ms < 1500);
      const c = await firstAttempt('closed');
      assert.equal(c.error_kind, 'connection');
      for (const name of ['redirect', 'slow', 'closed']) {
        const d = (await h.call('GET', `/api/v1/endpoints/${ids[name]}/deliveries`, tok)).body.data[0];
        assert.equal(d.status, 'pending', `${name} is scheduled for a retry`);
        assert.ok(d.next_attempt_at, `${name} has a next attempt time`);
      }
    } finally {
      await h.stop();
      await Promise.all([target.stop(), redirect.stop(), slow.stop()]);
    }
  });
});
