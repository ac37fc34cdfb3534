// Cross-tenant: two tenants with records in every dialect (native endpoints, Paycor-style
// registrations, Gusto-style subscriptions, their events and deliveries); every route of the
// tenant-facing APIs (native, portal, herald listen, Paycor-style, Gusto-style) that takes an
// id, tried with the other tenant's credentials and every id of the first tenant: a 404 in
// the dialect's shape, and the store exactly as it was (every row of the tables a call could
// change). The routes come from the OpenAPI documents, so a new route with an id is covered.
// The admin API is the operator's and sees every tenant by design: it is not part of this.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, startHerald, type TestHerald } from './helpers/herald.ts';
import { engines } from './helpers/pg.ts';
import { Receiver } from './helpers/receiver.ts';
import { rawRequest } from './helpers/rawHttp.ts';
import { shapeProblem } from './helpers/errorShapes.ts';
import { storeSnapshot, tenantWithRecords, type TenantRecords } from './helpers/tenantRecords.ts';

interface Route { method: string; path: string; doc: string; params: string[] }

async function idRoutes(h: TestHerald): Promise<Route[]> {
  const out: Route[] = [];
  for (const doc of ['native', 'paycor', 'gusto']) {
    const spec = await (await fetch(`${h.url}/openapi/${doc}.json`)).json() as { paths: Record<string, Record<string, { parameters?: { in: string; name: string }[] }>> };
    for (const [path, ops] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const params = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
        if (params.length) out.push({ method: method.toUpperCase(), path, doc, params });
      }
    }
  }
  return out;
}

/** Every id the tenant owns, each kind once. */
const idsOf = (t: TenantRecords) => [t.endpointId, t.registrationId, t.gustoId, t.eventId, t.deliveryId, t.paycorDeliveryId, t.id];

/** A body that is valid for the route, so that only ownership can refuse it. */
function bodyFor(r: Route, hook: string, victim: TenantRecords): unknown {
  const p = r.path;
  if (p.startsWith('/api/v1/endpoints/{id}') && r.method === 'PATCH') return { description: 'taken over', paused: true };
  if (p.startsWith('/api/v1/endpoints/{id}') && r.method === 'PUT') return { url: `${hook}/taken`, description: 'taken over' };
  if (p.startsWith('/eventsubscriptions/user/registrations/{id}') && r.method === 'PUT') return { WebHookUri: `${hook}/taken`, Description: 'taken over', IsPaused: true };
  if (p === '/v1/webhook_subscriptions/{uuid}' && r.method === 'PUT') return { subscription_types: ['Payroll'] };
  if (p.endsWith('/verify')) return { verification_token: 'a guess' };
  if (p.includes('/listen/')) return { request_id: victim.deliveryId, status_code: 200, duration_ms: 1 };
  return r.method === 'GET' || r.method === 'DELETE' ? undefined : {};
}

function authFor(doc: string, path: string, t: TenantRecords, portalLink?: string): Record<string, string> {
  if (doc === 'paycor') return t.auth.paycor;
  if (doc === 'gusto') return t.auth.gusto;
  if (path.startsWith('/portal/') && portalLink) return { authorization: `Bearer ${portalLink}` };
  return t.auth.native;
}

for (const engine of engines()) {
  describe(`one tenant's ids, tried with another tenant's credentials on every route (${engine})`, () => {
    let h: TestHerald;
    let a: TenantRecords;
    let b: TenantRecords;
    let routes: Route[];
    let bPortalLink: string;
    const hook = 'http://127.0.0.1:9';

    before(async () => {
      // Nothing is sent, so the only writes are the requests under test.
      h = await startHerald(engine, { HERALD_DISPATCH: 'off' });
      a = await tenantWithRecords(h, 'Victim', hook, ADMIN);
      b = await tenantWithRecords(h, 'Intruder', hook, ADMIN);
      routes = await idRoutes(h);
      const link = await h.admin('POST', '/admin/v1/portal-links', { tenant_id: b.id });
      assert.equal(link.status, 201);
      bPortalLink = link.body.token;
    });
    after(async () => { await h?.stop(); });

    test('the routes with ids include every tenant-facing dialect and the portal', () => {
      for (const prefix of ['/api/v1/endpoints/', '/portal/v1/deliveries/', '/portal/v1/subscriptions/', '/api/v1/listen/', '/eventsubscriptions/user/registrations/', '/v1/webhook_subscriptions/']) {
        assert.ok(routes.some((r) => r.path.startsWith(prefix)), prefix);
      }
    });

    test('the owner reaches each of its records (so a 404 below is about ownership)', async () => {
      const own: [string, Record<string, string>][] = [
        [`/api/v1/endpoints/${a.endpointId}`, a.auth.native],
        [`/api/v1/endpoints/${a.endpointId}/deliveries/${a.deliveryId}`, a.auth.native],
        [`/portal/v1/deliveries/${a.deliveryId}`, a.auth.native],
        [`/portal/v1/deliveries/${a.paycorDeliveryId}`, a.auth.native],
        [`/eventsubscriptions/user/registrations/${a.registrationId}`, a.auth.paycor],
        [`/v1/webhook_subscriptions/${a.gustoId}`, a.auth.gusto],
      ];
      for (const [path, headers] of own) assert.equal((await rawRequest(h.url, { method: 'GET', path, headers })).status, 200, path);
    });

    for (const via of ['api_token', 'portal link'] as const) {
      test(`every route with an id, every id of the other tenant (and mixes with the caller's own), via ${via}: 404 in the dialect's shape, nothing changed`, async (t) => {
        const problems: string[] = [];
        let tried = 0;
        // Every call must leave the store as it was: one baseline, compared after each (renewed after a fault).
        let baseline = await storeSnapshot(h);
        const mine = idsOf(b);
        const theirs = idsOf(a);
        for (const r of routes) {
          if (via === 'portal link' && !r.path.startsWith('/portal/')) continue;
          // Every combination of ids with at least one of the other tenant's.
          let combos: string[][] = [[]];
          for (let i = 0; i < r.params.length; i++) combos = combos.flatMap((c) => [...theirs, ...mine].map((id) => [...c, id]));
          combos = combos.filter((c) => c.some((id) => theirs.includes(id)));
          for (const ids of combos) {
            let i = 0;
            const path = r.path.replace(/\{[^}]+\}/g, () => ids[i++]!);
            const body = bodyFor(r, hook, a);
            const headers = { ...authFor(r.doc, r.path, b, via === 'portal link' ? bPortalLink : undefined), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
            const ans = await rawRequest(h.url, { method: r.method, path, headers, body: body === undefined ? undefined : JSON.stringify(body) });
            tried++;
            const where = `${r.method} ${path} → ${ans.status} ${ans.text.slice(0, 200)}`;
            if (ans.status !== 404) problems.push(`not a 404: ${where}`);
            const shape = shapeProblem(path, ans);
            if (shape) problems.push(`${shape}: ${where}`);
            const now = await storeSnapshot(h);
            try { assert.deepEqual(now, baseline); } catch { problems.push(`changed the store: ${where}`); baseline = now; }
          }
        }
        t.diagnostic(`${tried} calls on ${routes.filter((r) => via !== 'portal link' || r.path.startsWith('/portal/')).length} routes`);
        assert.deepEqual(problems, []);
        assert.ok(tried >= (via === 'api_token' ? 150 : 20), `tried ${tried}`);
      });
    }

    test('lists filtered by the other tenant\'s ids show nothing of it', async () => {
      const portal = await rawRequest(h.url, { method: 'GET', path: `/portal/v1/deliveries?subscription_id=${a.endpointId}`, headers: b.auth.native });
      assert.equal(portal.status, 404, portal.text);
      assert.equal(shapeProblem('/portal/v1/deliveries', portal), null);
      const byEvent = await rawRequest(h.url, { method: 'GET', path: `/portal/v1/deliveries?event_id=${a.eventId}`, headers: b.auth.native });
      assert.ok(byEvent.status === 200 || byEvent.status === 404, byEvent.text);
      if (byEvent.status === 200) assert.deepEqual((byEvent.json as any).data, []);
      const retryFailed = await rawRequest(h.url, { method: 'POST', path: '/portal/v1/deliveries/retry-failed', headers: { ...b.auth.native, 'content-type': 'application/json' }, body: JSON.stringify({ subscription_id: a.endpointId }) });
      assert.equal(retryFailed.status, 404, retryFailed.text);
      const events = await rawRequest(h.url, { method: 'GET', path: `/v1/events?limit=100`, headers: b.auth.gusto });
      assert.equal(events.status, 200);
      const uuids = (events.json as { uuid: string }[]).map((e) => e.uuid);
      assert.ok(uuids.includes(b.eventId) && !uuids.includes(a.eventId), JSON.stringify(uuids));
      const after = await rawRequest(h.url, { method: 'GET', path: `/v1/events?starting_after_uuid=${a.eventId}`, headers: b.auth.gusto });
      assert.ok(after.status < 500);
      if (after.status === 200) assert.ok(!(after.json as { uuid: string }[]).some((e) => idsOf(a).includes(e.uuid)));
      for (const [path, headers] of [['/api/v1/endpoints', b.auth.native], ['/eventsubscriptions/user/registrations', b.auth.paycor], ['/v1/webhook_subscriptions', b.auth.gusto], ['/portal/v1/subscriptions', b.auth.native], ['/portal/v1/deliveries', b.auth.native]] as const) {
        const list = await rawRequest(h.url, { method: 'GET', path, headers });
        assert.equal(list.status, 200, path);
        for (const id of idsOf(a)) assert.ok(!list.text.includes(id), `${path} shows ${id}`);
      }
    });

    test('credentials of two tenants mixed are refused: the other tenant\'s access token with one\'s own subscription key', async () => {
      const before = await storeSnapshot(h);
      const ans = await rawRequest(h.url, { method: 'GET', path: `/eventsubscriptions/user/registrations/${a.registrationId}`, headers: { 'ocp-apim-subscription-key': b.subscriptionKey, authorization: `Bearer ${a.accessToken}` } });
      assert.equal(ans.status, 401, ans.text);
      assert.equal(shapeProblem('/eventsubscriptions/user/registrations', ans), null);
      const token = await rawRequest(h.url, { method: 'POST', path: '/Accounts/v2/Common/Token', headers: { 'ocp-apim-subscription-key': b.subscriptionKey, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', client_id: a.clientId, client_secret: a.clientSecret }).toString() });
      assert.equal(token.status, 401, token.text);
      assert.deepEqual(await storeSnapshot(h), before);
    });

    test('the first tenant\'s records are all still there and unchanged by name', async () => {
      const ep = await rawRequest(h.url, { method: 'GET', path: `/api/v1/endpoints/${a.endpointId}`, headers: a.auth.native });
      assert.equal((ep.json as any).description, '');
      assert.equal((ep.json as any).paused, false);
      const reg = await rawRequest(h.url, { method: 'GET', path: `/eventsubscriptions/user/registrations/${a.registrationId}`, headers: a.auth.paycor });
      assert.equal((reg.json as any).WebHookUri, `${hook}/paycor`);
      const gu = await rawRequest(h.url, { method: 'GET', path: `/v1/webhook_subscriptions/${a.gustoId}`, headers: a.auth.gusto });
      assert.deepEqual((gu.json as any).subscription_types, ['Employee']);
    });
  });
}

describe('herald listen across tenants', () => {
  let h: TestHerald;
  let rx: Receiver;
  before(async () => {
    h = await startHerald('sqlite');
    rx = await new Receiver().start();
  });
  after(async () => { await h?.stop(); await rx.stop(); });

  test('a session name is the tenant\'s own: another tenant\'s same name is another subscription, and it cannot answer for the first one\'s deliveries', async () => {
    const a = await tenantWithRecords(h, 'ListenA', rx.url, ADMIN);
    const b = await tenantWithRecords(h, 'ListenB', rx.url, ADMIN);
    const open = async (t: TenantRecords) => {
      const ctl = new AbortController();
      const res = await fetch(`${h.url}/api/v1/listen?session=shared&events=Payroll.*`, { headers: t.auth.native, signal: ctl.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let buf = '';
      const next = async (event: string): Promise<any> => {
        for (;;) {
          const m = new RegExp(`event: ${event}\\ndata: (.*)\\n\\n`).exec(buf);
          if (m) { buf = buf.slice(m.index + m[0].length); return JSON.parse(m[1]!); }
          const { value, done } = await reader.read();
          if (done) throw new Error('stream ended');
          buf += Buffer.from(value).toString('utf8');
        }
      };
      return { next, close: () => ctl.abort() };
    };
    const sa = await open(a);
    const readyA = await sa.next('ready');
    const sb = await open(b);
    const readyB = await sb.next('ready');
    assert.notEqual(readyA.subscription_id, readyB.subscription_id);
    assert.notEqual(readyA.secret, readyB.secret);
    await h.publish({ tenant_id: a.id, entity: 'Payroll', event: 'paid', entity_id: 'p1', data: {} });
    const d = await sa.next('delivery');
    const bAnswer = await h.call('POST', '/api/v1/listen/shared/results', b.apiToken, { request_id: d.request_id, status_code: 200, duration_ms: 1 });
    assert.equal(bAnswer.status, 404, JSON.stringify(bAnswer.body));
    const aAnswer = await h.call('POST', '/api/v1/listen/shared/results', a.apiToken, { request_id: d.request_id, status_code: 200, duration_ms: 1 });
    assert.equal(aAnswer.status, 204, JSON.stringify(aAnswer.body));
    sa.close();
    sb.close();
  });
});
