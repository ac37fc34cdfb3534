// The limits an operator sets, each refused in every dialect that has the thing limited,
// in that dialect's error shape, naming the field (or the setting), with nothing written.
//   body size                  HERALD_MAX_BODY_BYTES, HERALD_MAX_BATCH_BODY_BYTES   413
//   subscriptions per tenant   HERALD_MAX_SUBSCRIPTIONS_PER_TENANT                  409
//   filters per subscription   HERALD_MAX_FILTERS_PER_SUBSCRIPTION                  422 (Paycor-style: 400)
//   headers per subscription   HERALD_MAX_HEADERS_PER_SUBSCRIPTION                  Paycor-style 400 (the one dialect with custom headers)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../src/config.ts';
import { ADMIN, startHerald, type TestHerald } from './helpers/herald.ts';
import { engines } from './helpers/pg.ts';
import { rawRequest, type RawAnswer } from './helpers/rawHttp.ts';
import { paycorAccessToken } from './helpers/tenantRecords.ts';
import { shapeProblem } from './helpers/errorShapes.ts';

const HOOK = 'http://127.0.0.1:9';

interface Creds { id: string; native: Record<string, string>; paycor: Record<string, string>; gusto: Record<string, string> }

async function tenant(h: TestHerald, name: string): Promise<Creds> {
  const t = await h.tenant(name);
  const c = t.credentials;
  const access = await paycorAccessToken(h, c.subscription_key, c.client_id, c.client_secret);
  return {
    id: t.id,
    native: { authorization: `Bearer ${c.api_token}` },
    paycor: { 'ocp-apim-subscription-key': c.subscription_key, authorization: `Bearer ${access}` },
    gusto: { authorization: `Token ${c.api_token}` },
  };
}

async function send(h: TestHerald, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<RawAnswer> {
  const bytes = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return rawRequest(h.url, { method, path, headers: { ...headers, ...(bytes ? { 'content-type': 'application/json' } : {}) }, body: bytes });
}

const liveSubscriptions = async (h: TestHerald, tenantId: string) =>
  Number((await h.herald.store.db.all<{ n: number }>('SELECT count(*) AS n FROM subscriptions WHERE tenant_id = $1 AND deleted_at IS NULL', [tenantId]))[0]!.n);
const allRows = async (h: TestHerald) => {
  const db = h.herald.store.db;
  const n = async (t: string) => Number((await db.all<{ n: number }>(`SELECT count(*) AS n FROM ${t}`))[0]!.n);
  return { subscriptions: await n('subscriptions'), events: await n('events'), deliveries: await n('deliveries') };
};

/** The field a refusal names, read from the dialect's shape. */
function fieldOf(path: string, a: RawAnswer): string | undefined {
  const b = a.json as any;
  if (path.startsWith('/eventsubscriptions')) return Object.keys(b.Source)[0];
  if (path.startsWith('/v1/')) return b.errors[0].error_key;
  return b.error.field;
}

function refused(path: string, a: RawAnswer, status: number, field?: string, message?: RegExp) {
  assert.equal(a.status, status, a.text);
  assert.equal(shapeProblem(path, a), null, a.text);
  if (field !== undefined) assert.equal(fieldOf(path, a), field, a.text);
  if (message) assert.match(a.text, message);
}

test('the limits default to 1 MB bodies, 32 MB batches, 1000 subscriptions a tenant, 20 headers and 200 filters a subscription, and are read from the environment', () => {
  const d = loadConfig({ HERALD_ADMIN_TOKEN: 'x', HERALD_SECRET_KEY: 'a'.repeat(64) });
  assert.deepEqual([d.maxBodyBytes, d.maxBatchBodyBytes, d.maxSubscriptionsPerTenant, d.maxHeadersPerSubscription, d.maxFiltersPerSubscription], [1048576, 33554432, 1000, 20, 200]);
  const c = loadConfig({ HERALD_ADMIN_TOKEN: 'x', HERALD_SECRET_KEY: 'a'.repeat(64), HERALD_MAX_BODY_BYTES: '2048', HERALD_MAX_SUBSCRIPTIONS_PER_TENANT: '7', HERALD_MAX_FILTERS_PER_SUBSCRIPTION: '500' });
  assert.deepEqual([c.maxBodyBytes, c.maxSubscriptionsPerTenant, c.maxFiltersPerSubscription], [2048, 7, 500]);
  assert.throws(() => loadConfig({ HERALD_ADMIN_TOKEN: 'x', HERALD_SECRET_KEY: 'a'.repeat(64), HERALD_MAX_BODY_BYTES: '10' }), /HERALD_MAX_BODY_BYTES/);
  assert.throws(() => loadConfig({ HERALD_ADMIN_TOKEN: 'x', HERALD_SECRET_KEY: 'a'.repeat(64), HERALD_MAX_SUBSCRIPTIONS_PER_TENANT: '0' }), /HERALD_MAX_SUBSCRIPTIONS_PER_TENANT/);
});

for (const engine of engines()) {
  describe(`limits with settings (${engine})`, () => {
    let h: TestHerald;
    let a: Creds;
    before(async () => {
      h = await startHerald(engine, {
        HERALD_MAX_BODY_BYTES: '4096', HERALD_MAX_BATCH_BODY_BYTES: '8192', HERALD_MAX_SUBSCRIPTIONS_PER_TENANT: '3',
        HERALD_MAX_FILTERS_PER_SUBSCRIPTION: '2', HERALD_MAX_HEADERS_PER_SUBSCRIPTION: '2',
      });
      a = await tenant(h, 'Limited');
    });
    after(async () => { await h?.stop(); });

    test('a body over HERALD_MAX_BODY_BYTES is a 413 naming the body and the limit, in each dialect', async () => {
      const pad = 'x'.repeat(5000);
      const cases: [string, string, Record<string, string>, unknown][] = [
        ['POST', '/admin/v1/tenants', { authorization: `Bearer ${ADMIN}` }, { name: pad }],
        ['POST', '/api/v1/endpoints', a.native, { url: `${HOOK}/n`, description: pad }],
        ['POST', '/eventsubscriptions/user/registrations', a.paycor, { WebHookUri: `${HOOK}/p`, Description: pad }],
        ['POST', '/v1/webhook_subscriptions', a.gusto, { url: `${HOOK}/g`, subscription_types: [pad] }],
        ['POST', '/portal/v1/deliveries/retry-failed', a.native, { subscription_id: pad }],
      ];
      const before = await allRows(h);
      for (const [method, path, headers, body] of cases) {
        const r = await send(h, method, path, headers, body);
        refused(path, r, 413, path.startsWith('/v1/') ? 'base' : 'body', /at most 4096 bytes/);
      }
      assert.deepEqual(await allRows(h), before);
      // Just under the limit is read, and judged on what it says.
      const ok = await send(h, 'POST', '/api/v1/endpoints', a.native, { url: `${HOOK}/n`, description: 'x'.repeat(900) });
      assert.equal(ok.status, 201, ok.text);
      await send(h, 'DELETE', `/api/v1/endpoints/${(ok.json as any).id}`, a.native);
    });

    test('the batch route has its own limit, HERALD_MAX_BATCH_BODY_BYTES', async () => {
      const events = (n: number) => ({ events: Array.from({ length: n }, (_, i) => ({ tenant_id: a.id, entity: 'Employee', event: 'Add', entity_id: `e${i}`, data: { pad: 'y'.repeat(200) } })) });
      const under = await send(h, 'POST', '/admin/v1/events/batch', { authorization: `Bearer ${ADMIN}` }, events(20));
      assert.ok(JSON.stringify(events(20)).length > 4096 && JSON.stringify(events(20)).length < 8192);
      assert.equal(under.status, 202, under.text);
      const before = await allRows(h);
      const over = await send(h, 'POST', '/admin/v1/events/batch', { authorization: `Bearer ${ADMIN}` }, events(40));
      refused('/admin/v1/events/batch', over, 413, 'body', /at most 8192 bytes/);
      assert.deepEqual(await allRows(h), before);
    });

    test('more filters than HERALD_MAX_FILTERS_PER_SUBSCRIPTION are refused naming the field, in each dialect and herald listen', async () => {
      const three = ['Employee.Add', 'Employee.Update', 'Payroll.*'];
      const before = await allRows(h);
      refused('/api/v1/endpoints', await send(h, 'POST', '/api/v1/endpoints', a.native, { url: `${HOOK}/n`, filters: three }), 422, 'filters', /HERALD_MAX_FILTERS_PER_SUBSCRIPTION/);
      refused('/eventsubscriptions/user/registrations', await send(h, 'POST', '/eventsubscriptions/user/registrations', a.paycor, { WebHookUri: `${HOOK}/p`, Filters: ['Add', 'Update', 'Delete'] }), 400, 'Filters', /at most 2 items/);
      refused('/v1/webhook_subscriptions', await send(h, 'POST', '/v1/webhook_subscriptions', a.gusto, { url: `${HOOK}/g`, subscription_types: ['Employee', 'Payroll', 'Company'] }), 422, 'subscription_types', /at most 2 items/);
      const listen = await send(h, 'GET', `/api/v1/listen?session=limits&events=${encodeURIComponent(three.join(','))}`, a.native);
      refused('/api/v1/listen', listen, 422, 'events', /at most 2 items/);
      assert.deepEqual(await allRows(h), before);
      // Changing an existing one is held to the same limit.
      const ep = await send(h, 'POST', '/api/v1/endpoints', a.native, { url: `${HOOK}/n`, filters: three.slice(0, 2) });
      assert.equal(ep.status, 201, ep.text);
      const id = (ep.json as any).id;
      refused('/api/v1/endpoints', await send(h, 'PATCH', `/api/v1/endpoints/${id}`, a.native, { filters: three }), 422, 'filters');
      const kept = await send(h, 'GET', `/api/v1/endpoints/${id}`, a.native);
      assert.deepEqual((kept.json as any).filters, three.slice(0, 2));
      await send(h, 'DELETE', `/api/v1/endpoints/${id}`, a.native);
    });

    test('more custom headers than HERALD_MAX_HEADERS_PER_SUBSCRIPTION are refused naming Headers (Paycor-style, the dialect that has them)', async () => {
      const before = await allRows(h);
      const r = await send(h, 'POST', '/eventsubscriptions/user/registrations', a.paycor, { WebHookUri: `${HOOK}/p`, Headers: { 'X-A': '1', 'X-B': '2', 'X-C': '3' } });
      refused('/eventsubscriptions/user/registrations', r, 400, 'Headers', /HERALD_MAX_HEADERS_PER_SUBSCRIPTION/);
      assert.deepEqual(await allRows(h), before);
      const ok = await send(h, 'POST', '/eventsubscriptions/user/registrations', a.paycor, { WebHookUri: `${HOOK}/p`, Headers: { 'X-A': '1', 'X-B': '2' } });
      assert.equal(ok.status, 201, ok.text);
      const id = (ok.json as any).Id;
      const put = await send(h, 'PUT', `/eventsubscriptions/user/registrations/${id}`, a.paycor, { WebHookUri: `${HOOK}/p`, Headers: { 'X-A': '1', 'X-B': '2', 'X-C': '3' } });
      refused('/eventsubscriptions/user/registrations', put, 400, 'Headers');
      const kept = await send(h, 'GET', `/eventsubscriptions/user/registrations/${id}`, a.paycor);
      assert.deepEqual((kept.json as any).Headers, { 'X-A': '1', 'X-B': '2' });
      await send(h, 'DELETE', `/eventsubscriptions/user/registrations/${id}`, a.paycor);
    });

    test('one subscription past HERALD_MAX_SUBSCRIPTIONS_PER_TENANT is a 409 in each dialect and for a new listen session; deleting one makes room', async () => {
      const t = await tenant(h, 'Full');
      const made = [
        await send(h, 'POST', '/api/v1/endpoints', t.native, { url: `${HOOK}/n` }),
        await send(h, 'POST', '/eventsubscriptions/user/registrations', t.paycor, { WebHookUri: `${HOOK}/p` }),
        await send(h, 'POST', '/v1/webhook_subscriptions', t.gusto, { url: `${HOOK}/g`, subscription_types: ['Employee'] }),
      ];
      assert.deepEqual(made.map((m) => m.status), [201, 201, 201]);
      const before = await allRows(h);
      const cases: [string, Record<string, string>, unknown][] = [
        ['/api/v1/endpoints', t.native, { url: `${HOOK}/n2` }],
        ['/eventsubscriptions/user/registrations', t.paycor, { WebHookUri: `${HOOK}/p2` }],
        ['/v1/webhook_subscriptions', t.gusto, { url: `${HOOK}/g2`, subscription_types: ['Employee'] }],
      ];
      for (const [path, headers, body] of cases) refused(path, await send(h, 'POST', path, headers, body), 409, undefined, /HERALD_MAX_SUBSCRIPTIONS_PER_TENANT is 3/);
      refused('/api/v1/listen', await send(h, 'GET', '/api/v1/listen?session=one-too-many', t.native), 409, undefined, /HERALD_MAX_SUBSCRIPTIONS_PER_TENANT/);
      // The Gusto-style refusal is not about one attribute.
      assert.equal(((await send(h, 'POST', '/v1/webhook_subscriptions', t.gusto, cases[2]![2])).json as any).errors[0].error_key, 'base');
      assert.deepEqual(await allRows(h), before, 'no subscription, event or delivery (no Gusto-style verification notice) was written');
      // Another tenant is not held to this one's count.
      const other = await send(h, 'POST', '/api/v1/endpoints', a.native, { url: `${HOOK}/other` });
      assert.equal(other.status, 201, other.text);
      await send(h, 'DELETE', `/api/v1/endpoints/${(other.json as any).id}`, a.native);
      const del = await send(h, 'DELETE', `/api/v1/endpoints/${(made[0]!.json as any).id}`, t.native);
      assert.equal(del.status, 204);
      const again = await send(h, 'POST', '/api/v1/endpoints', t.native, { url: `${HOOK}/n3` });
      assert.equal(again.status, 201, again.text);
      assert.equal(await liveSubscriptions(h, t.id), 3);
    });

    test('concurrent creations cannot pass the subscription limit together', async () => {
      const t = await tenant(h, 'Race');
      const first = await send(h, 'POST', '/api/v1/endpoints', t.native, { url: `${HOOK}/0` });
      assert.equal(first.status, 201);
      const all = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 3 === 0
        ? send(h, 'POST', '/api/v1/endpoints', t.native, { url: `${HOOK}/${i}` })
        : i % 3 === 1 ? send(h, 'POST', '/eventsubscriptions/user/registrations', t.paycor, { WebHookUri: `${HOOK}/${i}` })
          : send(h, 'POST', '/v1/webhook_subscriptions', t.gusto, { url: `${HOOK}/${i}`, subscription_types: ['Employee'] }))));
      const statuses = all.map((x) => x.status);
      assert.equal(statuses.filter((s) => s === 201).length, 2, JSON.stringify(statuses));
      assert.equal(statuses.filter((s) => s === 409).length, 10, JSON.stringify(statuses));
      assert.equal(await liveSubscriptions(h, t.id), 3);
    });
  });
}

describe('a higher filter limit lets more through than the old fixed 200', () => {
  let h: TestHerald;
  before(async () => { h = await startHerald('sqlite', { HERALD_MAX_FILTERS_PER_SUBSCRIPTION: '300' }); });
  after(async () => { await h?.stop(); });

  test('250 native filters are taken with HERALD_MAX_FILTERS_PER_SUBSCRIPTION=300, 301 are not', async () => {
    const t = await tenant(h, 'Many');
    const filters = (n: number) => Array.from({ length: n }, (_, i) => `Employee${i}.*`);
    // Filters must match the catalog: give it the entities first.
    for (let i = 0; i < 301; i++) await h.admin('POST', '/admin/v1/event-types', { entity: `Employee${i}`, event: 'Add' });
    const ok = await send(h, 'POST', '/api/v1/endpoints', t.native, { url: `${HOOK}/n`, filters: filters(250) });
    assert.equal(ok.status, 201, ok.text.slice(0, 300));
    refused('/api/v1/endpoints', await send(h, 'POST', '/api/v1/endpoints', t.native, { url: `${HOOK}/n`, filters: filters(301) }), 422, 'filters', /at most 300 items/);
  });
});
