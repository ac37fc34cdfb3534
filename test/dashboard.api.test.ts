// The dashboard's and portal's HTTP API end to end, on each engine: a real Herald, real
// receivers on loopback, the live stream read with fetch as the page reads it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { recordedHeaders, REDACTED } from '../src/dispatch/requestHeaders.ts';
import type { SubscriptionId, TenantId } from '../src/domain/ids.ts';
import { engines } from './helpers/pg.ts';
import { ADMIN, startHerald, type TestHerald } from './helpers/herald.ts';
import { eventually, Receiver, sleep } from './helpers/receiver.ts';

interface SseEvent { event: string; data: any; at: number }

/** A live stream read with fetch and a reader, as the dashboard page reads it. */
async function openStream(url: string, token: string) {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let buf = '';
  const pump = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += dec.decode(value, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) events.push({ event, data: JSON.parse(data), at: Date.now() });
        }
      }
    } catch { /* aborted */ }
  })();
  return {
    res, events, comments,
    /** Settles when the server ends the stream (or it is closed here). */
    done: pump,
    async close() { ac.abort(); await pump; },
    async waitFor(pred: (e: SseEvent) => boolean, ms = 5000): Promise<SseEvent> {
      let found: SseEvent | undefined;
      await eventually(() => (found = events.find(pred)) !== undefined, ms, 'a stream event');
      return found!;
    },
  };
}

test('request headers: custom headers that look secret are redacted; what a dialect sent in their place, and signatures, stay', () => {
  const sent = { 'user-agent': 'Herald', authorization: 'Bearer x', 'x-api-key': 'k1', 'x-route': 'blue', cookie: 'c', 'x-session-token': 't', 'webhook-signature': 'v1,abc', 'x-gusto-signature': 'ff' };
  const custom = { Authorization: 'Bearer x', 'X-Api-Key': 'k1', 'X-Route': 'blue', Cookie: 'c', 'X-Session-Token': 't', 'X-Gusto-Signature': 'mine' };
  assert.deepEqual(recordedHeaders(sent, custom), {
    'user-agent': 'Herald', authorization: REDACTED, 'x-api-key': REDACTED, 'x-route': 'blue', cookie: REDACTED, 'x-session-token': REDACTED,
    'webhook-signature': 'v1,abc', 'x-gusto-signature': 'ff',
  });
});

for (const engine of engines()) {
  describe(`dashboard API on ${engine}`, () => {
    let h: TestHerald;
    const receivers: Receiver[] = [];
    const receiver = async (respond?: ConstructorParameters<typeof Receiver>[0]) => {
      const r = await new Receiver(respond).start();
      receivers.push(r);
      return r;
    };
    before(async () => { h = await startHerald(engine, { HERALD_STREAM_KEEPALIVE_MS: '300', HERALD_STREAM_MAX_CONNECTIONS: '4' }); });
    after(async () => {
      await h.stop();
      await Promise.all(receivers.map((r) => r.stop()));
    });

    const endpoint = async (token: string, body: Record<string, unknown>) => {
      const r = await h.call('POST', '/api/v1/endpoints', token, body);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body as { id: string; secret: string };
    };
    const settled = (sid: string, n = 1) => eventually(async () => {
      const ds = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${sid}`)).body.data;
      return ds.length >= n && ds.every((d: any) => d.attempts > 0 && !d.in_flight);
    }, 10_000, `attempts to ${sid}`);
    const summaryOf = async (id: string) => (await h.admin('GET', '/admin/v1/subscriptions?limit=500')).body.data.find((x: any) => x.id === id);
    const portalLink = async (tenantId: string) => {
      const r = await h.admin('POST', '/admin/v1/portal-links', { tenant_id: tenantId });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body.token as string;
    };

    test('each attempt keeps the headers sent; a custom Authorization is redacted in the record, sent as is to the receiver', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      const ep = await endpoint(t.credentials.api_token, { url: rx.url + '/hook' });
      await h.herald.store.updateSubscription(t.id as TenantId, ep.id as SubscriptionId, { headers: { Authorization: 'Bearer rx-s3cret', 'X-Route': 'blue' } });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await rx.waitFor(1);
      assert.equal(rx.received[0]!.headers.authorization, 'Bearer rx-s3cret');
      await settled(ep.id);
      const d = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${ep.id}`)).body.data[0];
      const detail = (await h.admin('GET', `/admin/v1/deliveries/${d.id}`)).body;
      assert.equal(detail.event_type, 'Employee.Add');
      const sent = detail.attempt_log[0].request_headers;
      assert.equal(sent.authorization, '[redacted]');
      assert.equal(sent['x-route'], 'blue');
      assert.equal(sent['webhook-signature'], rx.received[0]!.headers['webhook-signature']);
      assert.equal(sent['webhook-id'], rx.received[0]!.headers['webhook-id']);
      assert.equal(sent['content-type'], 'application/json');
      assert.ok(!JSON.stringify(detail).includes('rx-s3cret'), 'the secret appears nowhere in the answer');
      // The portal shows the same record.
      const mine = (await h.call('GET', `/portal/v1/deliveries/${d.id}`, t.credentials.api_token)).body;
      assert.deepEqual(mine.attempt_log[0].request_headers, sent);
    });

    test('subscription health: healthy, failing (500), unreachable (refused), paused, idle, disabled (unverified); filters', async () => {
      const t = await h.tenant('Health');
      const tok = t.credentials.api_token;
      const ok = await receiver();
      const bad = await receiver(() => ({ status: 500, body: 'boom' }));
      const closed = await receiver();
      await closed.stop();
      const healthy = await endpoint(tok, { url: ok.url });
      const failing = await endpoint(tok, { url: bad.url });
      const unreachable = await endpoint(tok, { url: closed.url });
      const paused = await endpoint(tok, { url: ok.url, paused: true });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      const idle = await endpoint(tok, { url: ok.url });
      const gusto = await h.call('POST', '/v1/webhook_subscriptions', null, { url: ok.url + '/g', subscription_types: ['Employee'] }, { authorization: `Token ${tok}` });
      assert.equal(gusto.status, 201);
      await Promise.all([settled(healthy.id), settled(failing.id), settled(unreachable.id)]);
      const list = (await h.admin('GET', `/admin/v1/subscriptions?tenant_id=${t.id}`)).body;
      assert.equal(list.data.length, 6);
      const by = new Map(list.data.map((x: any) => [x.id, x]));
      const state = (id: string) => (by.get(id) as any).health.state;
      assert.equal(state(healthy.id), 'healthy');
      assert.equal(state(failing.id), 'failing');
      assert.equal(state(unreachable.id), 'unreachable');
      assert.equal(state(paused.id), 'paused');
      assert.equal(state(idle.id), 'idle');
      assert.equal(state(gusto.body.uuid), 'disabled');
      const h1 = (by.get(healthy.id) as any);
      assert.equal(h1.tenant_name, 'Health');
      assert.equal(h1.dialect, 'native');
      assert.deepEqual({ rate: h1.health.success_rate_1h, n: h1.health.attempts_1h, f: h1.health.failures_1h, code: h1.health.last_status_code }, { rate: 1, n: 1, f: 0, code: 200 });
      const f1 = (by.get(failing.id) as any).health;
      assert.equal(f1.success_rate_1h, 0);
      assert.equal(f1.last_status_code, 500);
      assert.equal(f1.last_error_kind, 'http_status');
      assert.ok(f1.failures_1h >= 1 && f1.failures_1h === f1.attempts_1h);
      assert.equal((by.get(idle.id) as any).health.success_rate_1h, null);
      assert.equal((by.get(unreachable.id) as any).health.last_error_kind, 'connection');
      // Filters: health state, dialect, paging.
      const failingOnly = (await h.admin('GET', `/admin/v1/subscriptions?tenant_id=${t.id}&status=failing`)).body.data;
      assert.deepEqual(failingOnly.map((x: any) => x.id), [failing.id]);
      const gustoOnly = (await h.admin('GET', `/admin/v1/subscriptions?tenant_id=${t.id}&dialect=gusto`)).body.data;
      assert.deepEqual(gustoOnly.map((x: any) => x.id), [gusto.body.uuid]);
      const p1 = (await h.admin('GET', `/admin/v1/subscriptions?tenant_id=${t.id}&limit=4`)).body;
      const p2 = (await h.admin('GET', `/admin/v1/subscriptions?tenant_id=${t.id}&limit=4&cursor=${p1.next_cursor}`)).body;
      assert.equal(p1.data.length, 4);
      assert.equal(p2.data.length, 2);
      assert.equal(p2.next_cursor, null);
      assert.deepEqual(new Set([...p1.data, ...p2.data].map((x: any) => x.id)), new Set(list.data.map((x: any) => x.id)));
      // The portal sees the same summaries, its own only.
      const mine = (await h.call('GET', '/portal/v1/subscriptions', tok)).body.data;
      assert.deepEqual(new Set(mine.map((x: any) => x.id)), new Set(list.data.map((x: any) => x.id)));
    });

    test('pause holds new deliveries and resume sends them; both answer the summary', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      const ep = await endpoint(t.credentials.api_token, { url: rx.url });
      const p = await h.admin('POST', `/admin/v1/subscriptions/${ep.id}/pause`);
      assert.equal(p.status, 200);
      assert.equal(p.body.paused, true);
      assert.equal(p.body.health.state, 'paused');
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await sleep(300);
      assert.equal(rx.received.length, 0);
      assert.equal((await h.admin('GET', `/admin/v1/deliveries?subscription_id=${ep.id}&status=held`)).body.data.length, 1);
      const r = await h.admin('POST', `/admin/v1/subscriptions/${ep.id}/resume`);
      assert.equal(r.status, 200);
      assert.equal(r.body.paused, false);
      await rx.waitFor(1);
      assert.equal((await h.admin('POST', '/admin/v1/subscriptions/01a00000-0000-7000-8000-000000000000/pause')).status, 404);
    });

    test('deliveries list: event type, time range, status, tenant, paging; each delivery carries its event type', async () => {
      const t = await h.tenant();
      const other = await h.tenant();
      const rx = await receiver();
      const ep = await endpoint(t.credentials.api_token, { url: rx.url });
      await endpoint(other.credentials.api_token, { url: rx.url });
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await h.publish({ tenant_id: other.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await sleep(5);
      const mid = new Date().toISOString();
      await sleep(5);
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: '1' });
      await h.publish({ tenant_id: t.id, entity: 'Payroll', event: 'paid', entity_id: '9' });
      await settled(ep.id, 3);
      const get = async (q: string) => (await h.admin('GET', `/admin/v1/deliveries?tenant_id=${t.id}&${q}`)).body;
      const all = await get('');
      assert.deepEqual(all.data.map((d: any) => d.event_type), ['Payroll.paid', 'Employee.Update', 'Employee.Add']);
      assert.deepEqual((await get('event_type=Employee.Update')).data.map((d: any) => d.event_type), ['Employee.Update']);
      assert.deepEqual((await get(`since=${mid}`)).data.map((d: any) => d.event_type), ['Payroll.paid', 'Employee.Update']);
      assert.deepEqual((await get(`until=${mid}`)).data.map((d: any) => d.event_type), ['Employee.Add']);
      assert.deepEqual((await get(`since=${mid}&event_type=Employee.Add`)).data, []);
      assert.equal((await get('status=succeeded')).data.length, 3);
      assert.equal((await get('status=failed')).data.length, 0);
      const p1 = await get('limit=2');
      const p2 = await get(`limit=2&cursor=${p1.next_cursor}`);
      assert.deepEqual([...p1.data, ...p2.data].map((d: any) => d.id), all.data.map((d: any) => d.id));
      assert.equal(p2.next_cursor, null);
      // Without tenant_id: every tenant's.
      const everyone = (await h.admin('GET', `/admin/v1/deliveries?since=${new Date(Date.parse(all.data.at(-1).created_at)).toISOString()}&limit=500`)).body.data;
      assert.ok(everyone.some((d: any) => d.tenant_id === other.id));
    });

    test('malformed input is a 400 naming the field, and writes nothing', async () => {
      const t = await h.tenant();
      const tok = t.credentials.api_token;
      const cases: [string, string, string | null, unknown, string][] = [
        ['GET', '/admin/v1/deliveries?since=yesterday', ADMIN, undefined, 'since'],
        ['GET', '/admin/v1/deliveries?until=2025-13-45T00:00:00Z', ADMIN, undefined, 'until'],
        ['GET', '/admin/v1/deliveries?since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z', ADMIN, undefined, 'until'],
        ['GET', '/admin/v1/deliveries?event_type=Employee', ADMIN, undefined, 'event_type'],
        ['GET', '/admin/v1/deliveries?status=lost', ADMIN, undefined, 'status'],
        ['GET', '/admin/v1/deliveries?limit=0', ADMIN, undefined, 'limit'],
        ['GET', '/admin/v1/deliveries?cursor=abc', ADMIN, undefined, 'cursor'],
        ['GET', '/admin/v1/deliveries?subscription_id=abc', ADMIN, undefined, 'subscription_id'],
        ['GET', '/admin/v1/subscriptions?status=sleepy', ADMIN, undefined, 'status'],
        ['GET', '/admin/v1/subscriptions?dialect=soap', ADMIN, undefined, 'dialect'],
        ['POST', '/admin/v1/portal-links', ADMIN, { tenant_id: 5 }, 'tenant_id'],
        ['POST', '/admin/v1/portal-links', ADMIN, { tenant_id: t.id, ttl_seconds: 0 }, 'ttl_seconds'],
        ['POST', '/admin/v1/portal-links', ADMIN, { tenant_id: t.id, ttl_seconds: 1e9 }, 'ttl_seconds'],
        ['POST', '/admin/v1/portal-links', ADMIN, { tenant_id: t.id, ttl_seconds: '60' }, 'ttl_seconds'],
        ['POST', '/admin/v1/portal-links', ADMIN, { tenant_id: t.id, admin: true }, 'admin'],
        ['POST', '/admin/v1/portal-links', ADMIN, '[1]', 'body'],
        ['GET', '/portal/v1/deliveries?since=soon', tok, undefined, 'since'],
        ['GET', '/portal/v1/deliveries?tenant_id=x', tok, undefined, 'tenant_id'],
        ['POST', '/portal/v1/deliveries/retry-failed', tok, { subscription_id: 'nope' }, 'subscription_id'],
        ['POST', '/portal/v1/deliveries/retry-failed', tok, { everything: true }, 'everything'],
      ];
      for (const [method, path, token, body, field] of cases) {
        const r = await h.call(method, path, token, body);
        assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.field, field, `${method} ${path}: ${JSON.stringify(r.body)}`);
      }
      const unknownTenant = await h.admin('POST', '/admin/v1/portal-links', { tenant_id: 'no-such-tenant' });
      assert.equal(unknownTenant.status, 422);
      assert.equal(unknownTenant.body.error.field, 'tenant_id');
      assert.equal((await h.call('GET', '/admin/v1/subscriptions', tok)).status, 401, 'a tenant token is not the admin token');
      assert.equal((await h.call('GET', '/portal/v1/me', ADMIN)).status, 401, 'the admin token is not a tenant');
      assert.equal((await h.call('GET', '/portal/v1/me', null)).status, 401);
    });

    test('a portal link signs a tenant in; a tampered one is refused; /me says how', async () => {
      const t = await h.tenant('Linked');
      const link = await h.admin('POST', '/admin/v1/portal-links', { tenant_id: t.id, ttl_seconds: 120 });
      assert.equal(link.status, 201);
      assert.match(link.body.token, /^hp_/);
      assert.equal(link.body.url, `${h.url}/dashboard/#portal=${link.body.token}`);
      const exp = Date.parse(link.body.expires_at);
      assert.ok(Math.abs(exp - (Date.now() + 120_000)) < 2000);
      const me = (await h.call('GET', '/portal/v1/me', link.body.token)).body;
      assert.deepEqual(me, { tenant: { id: t.id, name: 'Linked', number: t.number }, via: 'portal_link', expires_at: link.body.expires_at });
      const viaToken = (await h.call('GET', '/portal/v1/me', t.credentials.api_token)).body;
      assert.equal(viaToken.via, 'api_token');
      assert.equal(viaToken.expires_at, null);
      const [payload, mac] = link.body.token.slice(3).split('.');
      const forged = 'hp_' + Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), t: (await h.tenant()).id })).toString('base64url') + '.' + mac;
      const r = await h.call('GET', '/portal/v1/me', forged);
      assert.equal(r.status, 401);
      assert.equal((await h.call('GET', '/portal/v1/me', link.body.token.slice(0, -2) + 'AA')).status, 401);
    });

    test("a tenant's portal sees nothing of another tenant's: every route with the other's ids is 404 and changes nothing", async () => {
      const a = await h.tenant('A');
      const b = await h.tenant('B');
      const rxA = await receiver();
      const rxB = await receiver(() => ({ status: 500 }));
      await endpoint(a.credentials.api_token, { url: rxA.url });
      const epB = await endpoint(b.credentials.api_token, { url: rxB.url });
      await h.publish({ tenant_id: a.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await h.publish({ tenant_id: b.id, entity: 'Employee', event: 'Add', entity_id: '2' });
      await eventually(async () => (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${epB.id}&status=failed`)).body.data.length === 1, 10_000, "B's delivery to fail");
      const dB = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${epB.id}`)).body.data[0];
      const beforeB = (await h.admin('GET', `/admin/v1/deliveries/${dB.id}`)).body;
      const subBefore = await h.herald.store.getSubscription(b.id as TenantId, epB.id);
      const gotB = rxB.received.length;
      for (const token of [a.credentials.api_token, await portalLink(a.id)]) {
        const routes: [string, string, unknown?][] = [
          ['GET', `/portal/v1/deliveries/${dB.id}`],
          ['POST', `/portal/v1/deliveries/${dB.id}/retry`],
          ['GET', `/portal/v1/deliveries?subscription_id=${epB.id}`],
          ['POST', '/portal/v1/deliveries/retry-failed', { subscription_id: epB.id }],
          ['POST', `/portal/v1/subscriptions/${epB.id}/rotate-secret`],
          ['POST', `/portal/v1/subscriptions/${epB.id}/test`],
        ];
        for (const [method, path, body] of routes) {
          const r = await h.call(method, path, token, body);
          assert.equal(r.status, 404, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
          assert.equal(r.body.error.code, 'not_found');
        }
        const list = (await h.call('GET', '/portal/v1/deliveries?limit=500', token)).body.data;
        assert.ok(list.length >= 1 && list.every((d: any) => d.tenant_id === a.id));
        const subs = (await h.call('GET', '/portal/v1/subscriptions', token)).body.data;
        assert.ok(subs.length >= 1 && subs.every((x: any) => x.tenant_id === a.id));
        // A's retry-failed touches none of B's failed deliveries.
        assert.equal((await h.call('POST', '/portal/v1/deliveries/retry-failed', token, {})).body.retried, 0);
      }
      await sleep(300);
      const afterB = (await h.admin('GET', `/admin/v1/deliveries/${dB.id}`)).body;
      assert.deepEqual({ ...afterB, in_flight: false }, { ...beforeB, in_flight: false });
      assert.equal(afterB.status, 'failed');
      const subAfter = await h.herald.store.getSubscription(b.id as TenantId, epB.id);
      assert.deepEqual(subAfter!.secrets, subBefore!.secrets);
      assert.equal(rxB.received.length, gotB, 'no test event or retry reached B');
      assert.equal((await h.admin('GET', `/admin/v1/deliveries?subscription_id=${epB.id}`)).body.data.length, 1);
    });

    test('retry one and retry all failed reach a real receiver; a test event arrives signed and is recorded', async () => {
      const t = await h.tenant();
      const tok = await portalLink(t.id);
      let up = false;
      const rx = await receiver(() => (up ? { status: 200, body: 'back' } : { status: 503, body: 'down' }));
      const ep = await endpoint(t.credentials.api_token, { url: rx.url + '/in' });
      for (let i = 0; i < 3; i++) await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: String(i) });
      await eventually(async () => (await h.call('GET', '/portal/v1/deliveries?status=failed', tok)).body.data.length === 3, 10_000, 'three failed deliveries');
      up = true;
      const failed = (await h.call('GET', '/portal/v1/deliveries?status=failed', tok)).body.data;
      const seen = rx.received.length;
      const one = await h.call('POST', `/portal/v1/deliveries/${failed[0].id}/retry`, tok);
      assert.equal(one.status, 202);
      await rx.waitFor(seen + 1);
      assert.equal(rx.received[seen]!.headers['webhook-id'], failed[0].event_id);
      await eventually(async () => (await h.call('GET', `/portal/v1/deliveries/${failed[0].id}`, tok)).body.status === 'succeeded');
      const all = await h.call('POST', '/portal/v1/deliveries/retry-failed', tok, { subscription_id: ep.id });
      assert.equal(all.status, 202);
      assert.deepEqual(all.body, { retried: 2 });
      await rx.waitFor(seen + 3);
      assert.deepEqual(new Set(rx.received.slice(seen + 1).map((r) => r.headers['webhook-id'])), new Set(failed.slice(1).map((d: any) => d.event_id)));
      await eventually(async () => (await h.call('GET', '/portal/v1/deliveries?status=failed', tok)).body.data.length === 0);
      // A test event: through the engine, signed with the endpoint's secret, on record.
      const test = await h.call('POST', `/portal/v1/subscriptions/${ep.id}/test`, tok);
      assert.equal(test.status, 202);
      await rx.waitFor(seen + 4);
      const got = rx.received[seen + 3]!;
      const body = new Webhook(ep.secret).verify(got.body, got.headers as Record<string, string>) as any;
      assert.equal(body.type, '$herald.test');
      assert.equal(body.data.subscription_id, ep.id);
      await eventually(async () => (await h.call('GET', `/portal/v1/deliveries/${test.body.delivery_id}`, tok)).body.status === 'succeeded');
      const rec = (await h.call('GET', `/portal/v1/deliveries/${test.body.delivery_id}`, tok)).body;
      assert.equal(rec.event_type, '$herald.test');
      assert.equal(rec.attempt_log[0].status_code, 200);
      assert.equal(rec.attempt_log[0].request_headers['webhook-id'], got.headers['webhook-id']);
      assert.equal((await h.call('GET', `/portal/v1/deliveries?event_type=$herald.test`, tok)).body.data[0].id, test.body.delivery_id);
      // Paused: no test; and the operator's pause shows in the portal.
      await h.admin('POST', `/admin/v1/subscriptions/${ep.id}/pause`);
      assert.equal((await h.call('POST', `/portal/v1/subscriptions/${ep.id}/test`, tok)).status, 409);
    });

    test('rotate secret: the new one is shown once and both sign during the grace; other dialects answer 409 naming why', async () => {
      const t = await h.tenant();
      const tok = t.credentials.api_token;
      const rx = await receiver();
      const ep = await endpoint(tok, { url: rx.url });
      const r = await h.call('POST', `/portal/v1/subscriptions/${ep.id}/rotate-secret`, tok);
      assert.equal(r.status, 200);
      assert.match(r.body.secret, /^whsec_/);
      assert.notEqual(r.body.secret, ep.secret);
      assert.ok(Date.parse(r.body.previous_secrets_valid_until) > Date.now());
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await rx.waitFor(1);
      const got = rx.received[0]!;
      new Webhook(r.body.secret).verify(got.body, got.headers as Record<string, string>);
      new Webhook(ep.secret).verify(got.body, got.headers as Record<string, string>);
      assert.ok(!JSON.stringify((await h.call('GET', '/portal/v1/subscriptions', tok)).body).includes(r.body.secret), 'never shown again');
      const g = await h.call('POST', '/v1/webhook_subscriptions', null, { url: rx.url + '/g', subscription_types: ['Employee'] }, { authorization: `Token ${tok}` });
      const refused = await h.call('POST', `/portal/v1/subscriptions/${g.body.uuid}/rotate-secret`, tok);
      assert.equal(refused.status, 409);
      assert.match(refused.body.error.message, /Gusto-style receiver is keyed by its one verification token/);
    });

    test('live stream: an attempt appears within a second, the operator sees every tenant, a portal its own; keep-alives; bounded connections', async () => {
      const a = await h.tenant();
      const b = await h.tenant();
      const rxA = await receiver();
      const rxB = await receiver();
      await endpoint(a.credentials.api_token, { url: rxA.url });
      await endpoint(b.credentials.api_token, { url: rxB.url });
      const op = await openStream(`${h.url}/admin/v1/stream`, ADMIN);
      const pa = await openStream(`${h.url}/portal/v1/stream`, await portalLink(a.id));
      assert.equal(op.res.status, 200);
      assert.match(op.res.headers.get('content-type')!, /^text\/event-stream/);
      try {
        const evA = await h.publish({ tenant_id: a.id, entity: 'Employee', event: 'Add', entity_id: '1' });
        const evB = await h.publish({ tenant_id: b.id, entity: 'Employee', event: 'Update', entity_id: '2' });
        await rxA.waitFor(1);
        await rxB.waitFor(1);
        const seenA = await op.waitFor((e) => e.data.event_id === evA.id);
        await op.waitFor((e) => e.data.event_id === evB.id);
        assert.ok(seenA.at - rxA.received[0]!.at < 1000, `the attempt took ${seenA.at - rxA.received[0]!.at} ms to appear`);
        assert.equal(seenA.event, 'attempt');
        assert.deepEqual(Object.keys(seenA.data).sort(), ['attempt', 'delivery_id', 'delivery_status', 'duration_ms', 'error_kind', 'event_id', 'event_type', 'id', 'started_at', 'status_code', 'subscription_id', 'tenant_id']);
        assert.equal(seenA.data.tenant_id, a.id);
        assert.equal(seenA.data.event_type, 'Employee.Add');
        assert.equal(seenA.data.status_code, 200);
        assert.equal(seenA.data.attempt, 1);
        await pa.waitFor((e) => e.data.event_id === evA.id);
        await sleep(400);
        assert.ok(pa.events.every((e) => e.data.tenant_id === a.id), 'the portal stream carries only its tenant');
        assert.ok(!pa.events.some((e) => e.data.event_id === evB.id));
        assert.ok(op.comments.includes('keep-alive'), 'a keep-alive comment within the (shortened) interval');
        // At most four at once here; a closed one frees its place.
        const more = [await openStream(`${h.url}/admin/v1/stream`, ADMIN), await openStream(`${h.url}/admin/v1/stream`, ADMIN)];
        const refused = await fetch(`${h.url}/admin/v1/stream`, { headers: { authorization: `Bearer ${ADMIN}` } });
        assert.equal(refused.status, 503);
        assert.equal((await refused.json()).error.code, 'unavailable');
        await more[0]!.close();
        await eventually(async () => {
          const r = await fetch(`${h.url}/admin/v1/stream`, { headers: { authorization: `Bearer ${ADMIN}` } });
          if (r.status === 200) { await r.body?.cancel(); return true; }
          return false;
        }, 3000, 'a freed stream place');
        await more[1]!.close();
        assert.equal((await fetch(`${h.url}/portal/v1/stream`)).status, 401);
      } finally {
        await op.close();
        await pa.close();
      }
    });

    test('live stream: an attempt made by another Herald process on the same database appears', async () => {
      // A second Herald on this one's database, sending nothing: it learns of attempts only from the store.
      const watcher = await startHerald(engine, { ...h.env, HERALD_PORT: '0', HERALD_DISPATCH: 'off' });
      const t = await h.tenant();
      const rx = await receiver();
      await endpoint(t.credentials.api_token, { url: rx.url });
      const s = await openStream(`${watcher.url}/portal/v1/stream`, t.credentials.api_token);
      try {
        const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
        await rx.waitFor(1);
        const seen = await s.waitFor((e) => e.data.event_id === ev.id);
        assert.ok(seen.at - rx.received[0]!.at < 1000, `the attempt took ${seen.at - rx.received[0]!.at} ms to appear`);
      } finally {
        await s.close();
        await watcher.stop();
      }
    });
  });
}

describe('portal links expire', () => {
  test('with a one-second lifetime the link works, then is refused; HERALD_PUBLIC_URL makes the url', async () => {
    const h = await startHerald('sqlite', { HERALD_PORTAL_LINK_TTL_SECONDS: '1', HERALD_PORTAL_LINK_MAX_TTL_SECONDS: '60', HERALD_PUBLIC_URL: 'https://herald.example.com/' });
    try {
      const t = await h.tenant();
      const link = await h.admin('POST', '/admin/v1/portal-links', { tenant_id: t.id });
      assert.equal(link.status, 201);
      assert.equal(link.body.url, `https://herald.example.com/dashboard/#portal=${link.body.token}`);
      assert.equal((await h.call('GET', '/portal/v1/me', link.body.token)).status, 200);
      assert.equal((await h.admin('POST', '/admin/v1/portal-links', { tenant_id: t.id, ttl_seconds: 61 })).body.error.field, 'ttl_seconds');
      await sleep(Date.parse(link.body.expires_at) - Date.now() + 50);
      const r = await h.call('GET', '/portal/v1/me', link.body.token);
      assert.equal(r.status, 401);
      assert.match(r.body.error.message, /expired/);
      // A deleted tenant's link is refused too.
      const t2 = await h.tenant();
      const l2 = (await h.admin('POST', '/admin/v1/portal-links', { tenant_id: t2.id, ttl_seconds: 60 })).body.token;
      assert.equal((await h.admin('DELETE', `/admin/v1/tenants/${t2.id}`)).status, 204);
      assert.equal((await h.call('GET', '/portal/v1/me', l2)).status, 401);
    } finally {
      await h.stop();
    }
  });

  test('a live stream opened with a portal link ends when the link expires, and carries nothing after', async () => {
    const h = await startHerald('sqlite', { HERALD_STREAM_KEEPALIVE_MS: '200', HERALD_PORTAL_LINK_MAX_TTL_SECONDS: '60' });
    const rx = await new Receiver().start();
    try {
      const t = await h.tenant();
      assert.equal((await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url })).status, 201);
      const link = (await h.admin('POST', '/admin/v1/portal-links', { tenant_id: t.id, ttl_seconds: 1 })).body;
      const s = await openStream(`${h.url}/portal/v1/stream`, link.token);
      assert.equal(s.res.status, 200);
      try {
        await sleep(Date.parse(link.expires_at) - Date.now() + 50);
        const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
        await rx.waitFor(1);
        // Past the stream's poll, so the attempt would have been sent to a stream still open.
        await sleep(800);
        assert.ok(!s.events.some((e) => e.data.event_id === ev.id), 'an expired link saw a new attempt');
        let ended = false;
        void s.done.then(() => { ended = true; });
        await eventually(() => ended, 2000, 'the stream to end');
      } finally {
        await s.close();
      }
    } finally {
      await h.stop();
      await rx.stop();
    }
  });
});
