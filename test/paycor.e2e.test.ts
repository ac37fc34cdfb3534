// The Paycor-style dialect end to end: a client written from seed 000, a real receiver on
// loopback, and the seed's own C# Validate method judging every notification.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { engines } from './helpers/pg.ts';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { csharpValidate, monoAvailable, seedValidate } from './helpers/paycorValidator.ts';
import { eventually, Receiver, sleep, type Received } from './helpers/receiver.ts';

type Creds = { id: string; number: number; credentials: { client_id: string; client_secret: string; subscription_key: string; api_token: string } };

async function token(h: TestHerald, c: Creds['credentials'], over: Record<string, string> = {}, key = c.subscription_key) {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: c.client_id, client_secret: c.client_secret, scope: 'openid', ...over });
  const res = await fetch(h.url + '/Accounts/v2/Common/Token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(key ? { 'Ocp-Apim-Subscription-Key': key } : {}) },
    body: form.toString(),
  });
  return { status: res.status, body: await res.json() as any };
}

/** A Paycor client: bearer token and subscription key on every call. */
async function client(h: TestHerald, tenant: Creds) {
  const t = await token(h, tenant.credentials);
  assert.equal(t.status, 200, JSON.stringify(t.body));
  const headers = { 'Ocp-Apim-Subscription-Key': tenant.credentials.subscription_key };
  return (method: string, path: string, body?: unknown) => h.call(method, path, t.body.access_token, body, headers);
}

const sig = (r: Received) => String(r.headers['x-paycor-signature']);

for (const engine of engines()) {
  describe(`Paycor-style notifications on ${engine}`, () => {
    let h: TestHerald;
    const receivers: Receiver[] = [];
    const receiver = async () => { const r = await new Receiver().start(); receivers.push(r); return r; };
    before(async () => { h = await startHerald(engine); });
    after(async () => { await h.stop(); await Promise.all(receivers.map((r) => r.stop())); });

    test('token flow: good credentials, wrong secret, wrong or missing key, another client\'s key', async () => {
      const a = await h.tenant('A');
      const b = await h.tenant('B');
      const good = await token(h, a.credentials);
      assert.equal(good.status, 200);
      assert.equal(good.body.token_type, 'Bearer');
      assert.equal(good.body.expires_in, 3600);
      assert.ok(good.body.access_token.length > 20);
      const wrongSecret = await token(h, a.credentials, { client_secret: 'nope' });
      assert.equal(wrongSecret.status, 401);
      assert.equal(wrongSecret.body.error, 'invalid_client');
      const wrongKey = await token(h, a.credentials, {}, 'not-a-key');
      assert.equal(wrongKey.status, 401);
      assert.ok('Ocp-Apim-Subscription-Key' in wrongKey.body.Source);
      const noKey = await token(h, a.credentials, {}, '');
      assert.equal(noKey.status, 401);
      assert.match(noKey.body.Detail, /missing/);
      const otherKey = await token(h, a.credentials, {}, b.credentials.subscription_key);
      assert.equal(otherKey.status, 401);
      const badGrant = await token(h, a.credentials, { grant_type: 'password' });
      assert.equal(badGrant.status, 400);
      assert.equal(badGrant.body.error, 'unsupported_grant_type');
    });

    test('every /eventsubscriptions call needs the token and the key of one tenant', async () => {
      const a = await h.tenant('A');
      const b = await h.tenant('B');
      const t = (await token(h, a.credentials)).body.access_token;
      const path = '/eventsubscriptions/support/v1/events';
      const noKey = await h.call('GET', path, t);
      assert.equal(noKey.status, 401);
      assert.ok('Ocp-Apim-Subscription-Key' in noKey.body.Source, 'says the key is what is missing');
      assert.match(noKey.body.Detail, /missing/);
      const noToken = await h.call('GET', path, null, undefined, { 'Ocp-Apim-Subscription-Key': a.credentials.subscription_key });
      assert.equal(noToken.status, 401);
      assert.ok('Authorization' in noToken.body.Source, 'says the token is what is missing');
      const mixed = await h.call('GET', path, t, undefined, { 'Ocp-Apim-Subscription-Key': b.credentials.subscription_key });
      assert.equal(mixed.status, 401);
      const apiToken = await h.call('GET', path, a.credentials.api_token, undefined, { 'Ocp-Apim-Subscription-Key': a.credentials.subscription_key });
      assert.equal(apiToken.status, 401, 'the native api_token is not an access token');
      for (const body of [noKey.body, noToken.body, mixed.body]) assert.deepEqual(Object.keys(body).sort(), ['CorrelationId', 'Detail', 'Source', 'Title']);
    });

    test('an expired token is refused', async () => {
      const short = await startHerald(engine, { HERALD_PAYCOR_TOKEN_TTL_SECONDS: '1' });
      try {
        const a = await short.tenant();
        const t = (await token(short, a.credentials)).body;
        assert.equal(t.expires_in, 1);
        const key = { 'Ocp-Apim-Subscription-Key': a.credentials.subscription_key };
        assert.equal((await short.call('GET', '/eventsubscriptions/user/registrations', t.access_token, undefined, key)).status, 200);
        await sleep(2100);
        const r = await short.call('GET', '/eventsubscriptions/user/registrations', t.access_token, undefined, key);
        assert.equal(r.status, 401);
        assert.match(r.body.Detail, /expired/);
      } finally {
        await short.stop();
      }
    });

    test('the catalog lists Entity, Event and Description', async () => {
      const api = await client(h, await h.tenant());
      const r = await api('GET', '/eventsubscriptions/support/v1/events');
      assert.equal(r.status, 200);
      assert.ok(Array.isArray(r.body));
      assert.deepEqual(Object.keys(r.body[0]).sort(), ['Description', 'Entity', 'Event']);
      assert.ok(r.body.some((e: any) => e.Entity === 'Employee' && e.Event === 'Add'));
      assert.ok(r.body.some((e: any) => e.Entity === 'Employee' && e.Event === 'Update'));
      const shouted = await api('GET', '/EventSubscriptions/Support/V1/Events');
      assert.equal(shouted.status, 200, 'paths match in any letter case, as in ASP.NET');
      assert.deepEqual(shouted.body, r.body);
    });

    test('a registration without IsPaused is paused; its notifications wait until a PUT unpauses it, then arrive once', async () => {
      const tenant = await h.tenant();
      const api = await client(h, tenant);
      const rx = await receiver();
      const created = await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: rx.url + '/paycor', Description: 'HR sync', Filters: ['Add'] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const reg = created.body;
      assert.equal(reg.IsPaused, true, 'IsPaused defaults to true');
      assert.match(reg.Secret, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a GUID is generated when Secret is omitted');
      assert.ok(reg.Id);
      for (let i = 0; i < 2; i++) await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: `e${i}` });
      await sleep(400);
      assert.equal(rx.received.length, 0, 'held while paused');
      const put = await api('PUT', `/eventsubscriptions/user/registrations/${reg.Id}`, { Id: reg.Id, WebHookUri: rx.url + '/paycor', Description: 'HR sync', IsPaused: false, Filters: ['Add'] });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.equal(put.body.IsPaused, false);
      assert.equal(put.body.Secret, undefined);
      await rx.waitFor(2);
      await sleep(300);
      assert.equal(rx.received.length, 2, 'each held notification once');
      for (const r of rx.received) assert.ok(seedValidate(sig(r), r.body, reg.Secret), 'the secret was kept by a PUT without Secret');
      // Pausing again holds new events.
      await api('PUT', `/eventsubscriptions/user/registrations/${reg.Id}`, { Id: reg.Id, WebHookUri: rx.url + '/paycor', IsPaused: true, Filters: ['Add'] });
      await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: 'e3' });
      await sleep(300);
      assert.equal(rx.received.length, 2);
    });

    test('a notification has the published model, signed so the seed\'s validator accepts it, ASCII or not', async () => {
      const tenant = await h.tenant();
      const api = await client(h, tenant);
      const rx = await receiver();
      const secret = 'd7c1e3f0-5b7a-4c4e-9a51-0b2f6c1d8e42';
      const reg = (await api('POST', '/eventsubscriptions/user/registrations', {
        WebHookUri: rx.url, Secret: secret, IsPaused: false, Filters: ['Employee.Add', 'Employee.Update'],
        Headers: { 'X-Route': 'hr' }, Properties: { Source: 'Herald test' },
      })).body;
      assert.equal(reg.Secret, secret);
      const names = [
        { first: 'Jane', city: 'Boston' },
        { first: 'José', city: 'Zürich' },
        { first: 'Zoë 😀', city: '東京', note: 'quotes " and \\ and \u2028' },
      ];
      for (const [i, n] of names.entries()) {
        await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: i === 0 ? 'Add' : 'Update', entity_id: `emp-${i}`, entity_uri: `v1/employees/emp-${i}`, parent_type: 'LegalEntity', parent_id: '1234', data: { ...n, changed_fields: ['FirstName'] } });
      }
      await rx.waitFor(3);
      const bodies = rx.received.map((r) => JSON.parse(r.body));
      const byItem = new Map(bodies.map((b, i) => [b.ItemId, { b, r: rx.received[i]! }]));
      const { b: first, r: firstRaw } = byItem.get('emp-1')!;
      assert.deepEqual(Object.keys(first), ['EventId', 'EventType', 'TenantId', 'LegalEntityId', 'ItemId', 'Resource', 'ExtendedProperties', 'ChangedFields']);
      assert.equal(first.EventType, 'Employee.Update');
      assert.equal(first.TenantId, tenant.number);
      assert.equal(first.LegalEntityId, 1234);
      assert.deepEqual(first.Resource, { Id: 'emp-1', Url: 'v1/employees/emp-1' });
      assert.deepEqual(first.ExtendedProperties, { first: 'José', city: 'Zürich', Source: 'Herald test' });
      assert.deepEqual(first.ChangedFields, ['FirstName']);
      assert.equal(firstRaw.headers['content-type'], 'application/json');
      assert.equal(firstRaw.headers['x-route'], 'hr', 'custom headers are sent');
      assert.ok(/^[\x00-\x7f]*$/.test(firstRaw.body), 'the body is pure ASCII');
      assert.equal(byItem.get('emp-2')!.b.ExtendedProperties.first, 'Zoë 😀');
      for (const r of rx.received) {
        assert.match(sig(r), /^[0-9A-F]{64}$/);
        assert.ok(seedValidate(sig(r), r.body, secret), 'the seed\'s algorithm accepts it');
        assert.ok(!seedValidate(sig(r), r.body, secret.replace('d7', 'e7')), 'and refuses another secret');
      }
      // The same notification with its non-ASCII characters left raw would fail the seed's check:
      const raw = JSON.stringify(first);
      const rawSig = createHmac('sha256', secret).update(raw, 'utf8').digest('hex').toUpperCase();
      assert.equal(seedValidate(rawSig, raw, secret), false);
      if (monoAvailable) {
        const verdicts = csharpValidate([
          ...rx.received.map((r) => ({ signature: sig(r), body: r.body, secret })),
          { signature: rawSig, body: raw, secret },
        ]);
        assert.deepEqual(verdicts, [true, true, true, false], 'the seed\'s C# Validate, compiled and run, agrees');
      } else if (process.env.CI === 'true') {
        assert.fail('CI must run the seed\'s C# validator: install mono-mcs');
      } else {
        console.log('NOTE: mcs/mono not installed; the seed\'s C# Validate ran as its JavaScript model only.');
      }
    });

    test('filters: a plain event name matches it on every entity, a qualified one only that entity; unknown names are refused with the valid ones', async () => {
      const tenant = await h.tenant();
      const api = await client(h, tenant);
      const plain = await receiver();
      const qualified = await receiver();
      const all = await receiver();
      await h.admin('POST', '/admin/v1/event-types', { entity: 'Company', event: 'Add', description: 'A company was added.' });
      await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: plain.url, IsPaused: false, Filters: ['Add'] });
      await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: qualified.url, IsPaused: false, Filters: ['Employee.Add'] });
      const allReg = (await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: all.url, IsPaused: false })).body;
      assert.deepEqual(allReg.Filters, []);
      await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await h.publish({ tenant_id: tenant.id, entity: 'Company', event: 'Add', entity_id: '2' });
      await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Update', entity_id: '3' });
      await all.waitFor(3);
      await plain.waitFor(2);
      await qualified.waitFor(1);
      await sleep(300);
      assert.deepEqual(plain.received.map((r) => JSON.parse(r.body).EventType).sort(), ['Company.Add', 'Employee.Add']);
      assert.deepEqual(qualified.received.map((r) => JSON.parse(r.body).EventType), ['Employee.Add']);
      const bad = await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: all.url, Filters: ['Add', 'Fire', 'Employee.Hire'] });
      assert.equal(bad.status, 400);
      assert.match(bad.body.Source.Filters, /Fire, Employee\.Hire/);
      assert.match(bad.body.Source.Filters, /Valid names: .*Add.*Employee\.Add.*Update/);
    });

    test('field names bind in any letter case, as in ASP.NET', async () => {
      const tenant = await h.tenant();
      const api = await client(h, tenant);
      const rx = await receiver();
      const r = await api('POST', '/eventsubscriptions/user/registrations', { webhookUri: rx.url, isPaused: false, filters: ['Add'], description: 'camel' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.deepEqual([r.body.WebHookUri, r.body.IsPaused, r.body.Filters, r.body.Description], [rx.url, false, ['Add'], 'camel']);
      const twice = await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: rx.url, webHookUri: rx.url });
      assert.equal(twice.status, 400);
      assert.ok('WebHookUri' in twice.body.Source);
    });

    test('list and get never show the secret; another tenant gets 404', async () => {
      const a = await h.tenant('A');
      const b = await h.tenant('B');
      const apiA = await client(h, a);
      const apiB = await client(h, b);
      const rx = await receiver();
      const reg = (await apiA('POST', '/eventsubscriptions/user/registrations', { WebHookUri: rx.url, Secret: 'x'.repeat(40) })).body;
      const list = await apiA('GET', '/eventsubscriptions/user/registrations');
      assert.equal(list.status, 200);
      assert.equal(list.body.length, 1);
      assert.deepEqual(Object.keys(list.body[0]).sort(), ['Description', 'Filters', 'Headers', 'Id', 'IsPaused', 'Properties', 'WebHookUri']);
      const one = await apiA('GET', `/eventsubscriptions/user/registrations/${reg.Id}`);
      assert.equal(one.body.Id, reg.Id);
      assert.ok(!JSON.stringify([list.body, one.body]).includes('x'.repeat(40)));
      assert.deepEqual((await apiB('GET', '/eventsubscriptions/user/registrations')).body, []);
      for (const [m, body] of [['GET', undefined], ['PUT', { Id: reg.Id, WebHookUri: rx.url }], ['DELETE', undefined]] as const) {
        const r = await apiB(m, `/eventsubscriptions/user/registrations/${reg.Id}`, body);
        assert.equal(r.status, 404, m);
        assert.ok(r.body.CorrelationId);
      }
      assert.equal((await apiA('GET', `/eventsubscriptions/user/registrations/${reg.Id}`)).status, 200);
    });

    test('DELETE cancels what is queued and nothing more is sent', async () => {
      const tenant = await h.tenant();
      const api = await client(h, tenant);
      const rx = await receiver();
      const reg = (await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: rx.url })).body;
      await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      const del = await api('DELETE', `/eventsubscriptions/user/registrations/${reg.Id}`);
      assert.equal(del.status, 204);
      assert.equal((await api('GET', `/eventsubscriptions/user/registrations/${reg.Id}`)).status, 404);
      await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: '2' });
      await sleep(400);
      assert.equal(rx.received.length, 0);
      const ds = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${reg.Id}`)).body.data;
      assert.deepEqual(ds.map((d: any) => d.status), ['cancelled'], 'the queued one is cancelled; the later event made none');
    });

    test('the mock event call sends a signed test notification and answers it', async () => {
      const tenant = await h.tenant();
      const api = await client(h, tenant);
      const rx = await receiver();
      const secret = 'mock-secret-0123456789-abcdefghijkl';
      const r = await api('POST', '/v1/events/mockevent', { ApplicationId: 'app', TenantId: 1, EventType: 'Employee.Add', NotificationURL: rx.url + '/mock', NotificationSecret: secret, ItemId: 'item-9', LegalEntityId: 77 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.EventType, 'Employee.Add');
      assert.equal(r.body.ItemId, 'item-9');
      assert.equal(r.body.LegalEntityId, 77);
      assert.equal(r.body.TenantId, tenant.number);
      await rx.waitFor(1);
      assert.deepEqual(rx.json(0), r.body);
      assert.ok(seedValidate(sig(rx.received[0]!), rx.received[0]!.body, secret));
      const bad = await api('POST', '/v1/events/mockevent', { EventType: 'Employee.Fly', NotificationURL: rx.url, NotificationSecret: secret });
      assert.equal(bad.status, 400);
      assert.ok('EventType' in bad.body.Source);
      const priv = await api('POST', '/v1/events/mockevent', { EventType: 'Employee.Add', NotificationURL: 'http://10.1.2.3/', NotificationSecret: secret });
      assert.equal(priv.status, 400);
      assert.ok('NotificationURL' in priv.body.Source);
    });

    test('a failing receiver is retried; the registration\'s deliveries show in the admin API', async () => {
      const tenant = await h.tenant();
      const api = await client(h, tenant);
      const rx = await new Receiver((_r, n) => ({ status: n === 1 ? 500 : 200 })).start();
      receivers.push(rx);
      const reg = (await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: rx.url, IsPaused: false })).body;
      await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await rx.waitFor(2);
      assert.equal(rx.json(0).EventId, rx.json(1).EventId, 'EventId is stable across retries');
      assert.equal(sig(rx.received[0]!), sig(rx.received[1]!), 'the same body and signature every time');
      await eventually(async () => (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${reg.Id}`)).body.data[0]?.status === 'succeeded');
    });
  });
}

describe('Paycor-style input errors', () => {
  let h: TestHerald;
  let api: Awaited<ReturnType<typeof client>>;
  before(async () => {
    h = await startHerald('sqlite');
    api = await client(h, await h.tenant());
  });
  after(() => h.stop());

  const cases: [string, unknown, string][] = [
    ['no WebHookUri', { Secret: 'x'.repeat(36) }, 'WebHookUri'],
    ['relative WebHookUri', { WebHookUri: '/hook' }, 'WebHookUri'],
    ['ftp WebHookUri', { WebHookUri: 'ftp://example.com/x' }, 'WebHookUri'],
    ['private WebHookUri', { WebHookUri: 'http://192.168.1.10/x' }, 'WebHookUri'],
    ['number WebHookUri', { WebHookUri: 42 }, 'WebHookUri'],
    ['short Secret', { WebHookUri: 'http://127.0.0.1:1/x', Secret: 'short' }, 'Secret'],
    ['long Secret', { WebHookUri: 'http://127.0.0.1:1/x', Secret: 'x'.repeat(65) }, 'Secret'],
    ['non-ASCII Secret', { WebHookUri: 'http://127.0.0.1:1/x', Secret: 'é'.repeat(40) }, 'Secret'],
    ['string IsPaused', { WebHookUri: 'http://127.0.0.1:1/x', IsPaused: 'yes' }, 'IsPaused'],
    ['Filters not a list', { WebHookUri: 'http://127.0.0.1:1/x', Filters: 'Add' }, 'Filters'],
    ['a Filter not a string', { WebHookUri: 'http://127.0.0.1:1/x', Filters: [1] }, 'Filters[0]'],
    ['Description not a string', { WebHookUri: 'http://127.0.0.1:1/x', Description: {} }, 'Description'],
    ['Headers not an object', { WebHookUri: 'http://127.0.0.1:1/x', Headers: ['a'] }, 'Headers'],
    ['a reserved header', { WebHookUri: 'http://127.0.0.1:1/x', Headers: { 'Content-Type': 'text/plain' } }, 'Headers.Content-Type'],
    ['a bad header name', { WebHookUri: 'http://127.0.0.1:1/x', Headers: { 'bad name': 'x' } }, 'Headers.bad name'],
    ['a Property not a string', { WebHookUri: 'http://127.0.0.1:1/x', Properties: { a: 1 } }, 'Properties.a'],
    ['an array body', [], 'body'],
  ];
  for (const [name, body, field] of cases) {
    test(`POST with ${name} is a 400 naming ${field}`, async () => {
      const r = await api('POST', '/eventsubscriptions/user/registrations', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.ok(field in r.body.Source, `Source names ${field}: ${JSON.stringify(r.body.Source)}`);
      assert.ok(r.body.CorrelationId && r.body.Title && r.body.Detail);
    });
  }

  test('malformed JSON, PUT with a different Id, an unknown id, and nothing half-written', async () => {
    const bad = await api('POST', '/eventsubscriptions/user/registrations', '{"WebHookUri":');
    assert.equal(bad.status, 400);
    assert.ok('body' in bad.body.Source);
    assert.deepEqual((await api('GET', '/eventsubscriptions/user/registrations')).body, [], 'no rejected POST saved anything');
    const reg = (await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: 'http://127.0.0.1:1/x' })).body;
    const put = await api('PUT', `/eventsubscriptions/user/registrations/${reg.Id}`, { Id: 'other', WebHookUri: 'http://127.0.0.1:1/x' });
    assert.equal(put.status, 400);
    assert.ok('Id' in put.body.Source);
    const badPut = await api('PUT', `/eventsubscriptions/user/registrations/${reg.Id}`, { Id: reg.Id, WebHookUri: 'http://127.0.0.1:1/y', Filters: ['Nope'] });
    assert.equal(badPut.status, 400);
    assert.equal((await api('GET', `/eventsubscriptions/user/registrations/${reg.Id}`)).body.WebHookUri, 'http://127.0.0.1:1/x', 'a refused PUT changed nothing');
    assert.equal((await api('GET', '/eventsubscriptions/user/registrations/00000000-0000-7000-8000-000000000000')).status, 404);
    const unknownRoute = await api('GET', '/eventsubscriptions/user/nothing');
    assert.equal(unknownRoute.status, 404);
    assert.ok(unknownRoute.body.CorrelationId, 'unknown routes answer in the Paycor shape too');
    const mock = await api('POST', '/v1/events/mockevent', { EventType: 'Employee.Add', NotificationURL: 'http://127.0.0.1:1/x' });
    assert.equal(mock.status, 400);
    assert.ok('NotificationSecret' in mock.body.Source);
  });
});
