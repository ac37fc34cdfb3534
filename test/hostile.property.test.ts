// Hostile input, tried by machine: fast-check sends random and malformed requests to every
// route of the four APIs (admin with the dashboard's operator routes, native with the
// portal and herald listen, Paycor-style, Gusto-style), taken from the OpenAPI documents of
// the running Herald so that a new route is covered without editing this file.
//
// Each request: the route's method and path with random path values, random query, random
// headers (valid credentials on most runs, so input reaches validation), a random content
// type, and a body that is shaped like the route's schema with random values, random JSON,
// broken JSON, raw bytes or invalid UTF-8. Properties:
//   - never a 5xx;
//   - a 4xx is in its dialect's error shape;
//   - a refused call writes nothing: every table's row count, and the rows of tenants,
//     subscriptions, event types and deliveries, are the same after it as before it.
// Dispatch is off, so nothing but the request under test writes to the store.
//
// HERALD_TEST_PROPERTY_RUNS sets the runs per route (15 by default, a third of that on PostgreSQL; ask for more in a long run).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { DocumentName } from '../src/http/openapi.ts';
import { shapeProblem } from './helpers/errorShapes.ts';
import { ADMIN, startHerald, type TestHerald } from './helpers/herald.ts';
import { engines } from './helpers/pg.ts';
import { rawRequest } from './helpers/rawHttp.ts';
import { storeSnapshot, tenantWithRecords, type TenantRecords } from './helpers/tenantRecords.ts';

const RUNS = Number(process.env.HERALD_TEST_PROPERTY_RUNS ?? 15);
const SEED = process.env.HERALD_TEST_PROPERTY_SEED ? Number(process.env.HERALD_TEST_PROPERTY_SEED) : undefined;
const ABSENT = '0190a0a0-0000-7000-8000-000000000000';

interface Route {
  method: string;
  path: string;
  doc: DocumentName;
  params: string[];
  query: string[];
  bodyProps: string[] | null;
  bodyTypes: string[];
}

async function routesOf(h: TestHerald): Promise<Route[]> {
  const out: Route[] = [];
  for (const d of ['admin', 'native', 'paycor', 'gusto'] as const) {
    const doc = await (await fetch(`${h.url}/openapi/${d}.json`)).json() as { paths: Record<string, Record<string, any>> };
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const params = (op.parameters ?? []) as { in: string; name: string }[];
        const content = op.requestBody?.content as Record<string, { schema?: { properties?: Record<string, unknown> } }> | undefined;
        out.push({
          method: method.toUpperCase(), path, doc: d,
          params: params.filter((p) => p.in === 'path').map((p) => p.name),
          query: params.filter((p) => p.in === 'query').map((p) => p.name),
          bodyProps: content ? Object.keys(Object.values(content)[0]?.schema?.properties ?? {}) : null,
          bodyTypes: content ? Object.keys(content) : [],
        });
      }
    }
  }
  return out;
}

// ---- generators ------------------------------------------------------------------------

/** Percent-encodes what encodeURIComponent can, and keeps lone surrogates as invalid UTF-8 bytes. */
function enc(s: string): string {
  try { return encodeURIComponent(s); } catch { return [...s].map((ch) => { try { return encodeURIComponent(ch); } catch { return '%ED%A0%80'; } }).join(''); }
}

const nastyText = fc.constantFrom(
  '', '%20', '+', '%', '%zz', '%FF', '%C3%28', '%00', '%ED%A0%80', '..', '../..', '%2e%2e%2f', '*', 'null', 'true', '-1', '0', '1e309', '9'.repeat(40),
  'a'.repeat(201), 'a'.repeat(5000), '%E2%80%AE', '%F0%9F%92%A9', 'x%0d%0aSet-Cookie:%20a=b', '%5B%5D', '%7B%7D', '%C3%AB'.repeat(100),
);

function pathValue(r: TenantRecords) {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(r.endpointId, r.registrationId, r.gustoId, r.eventId, r.deliveryId, r.paycorDeliveryId, r.id, ABSENT, 's1').map(enc) },
    { weight: 2, arbitrary: fc.uuid().map(enc) },
    { weight: 2, arbitrary: fc.string({ maxLength: 80, unit: 'binary' }).map(enc) },
    { weight: 3, arbitrary: nastyText },
  );
}

function queryOf(names: string[], r: TenantRecords) {
  const value = fc.oneof(
    fc.constantFrom('1', '0', '-5', '501', '1000000000000000000000', 'asc', 'desc', 'sideways', 'failed', 'succeeded', 'Employee.Add', 'employee.*', '*', 'native', 'paycor',
      '2020-01-01T00:00:00Z', 'yesterday', r.id, r.endpointId, r.eventId, r.deliveryId, ABSENT, 'default', 'a,b,c', 'Employee.*,'.repeat(300)).map(enc),
    fc.string({ maxLength: 60, unit: 'binary' }).map(enc),
    nastyText,
  );
  const key = fc.oneof({ weight: 4, arbitrary: names.length ? fc.constantFrom(...names) : fc.constant('limit') }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map(enc) }, { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'a[b]', 'a.b') });
  return fc.array(fc.tuple(key, value, fc.boolean()), { maxLength: 6 }).map((pairs) => pairs.map(([k, v, bare]) => (bare && v === '' ? k : `${k}=${v}`)).join('&'));
}

function plausible(r: TenantRecords, hook: string) {
  return fc.constantFrom<unknown>(
    `${hook}/p`, 'http://127.0.0.1:1/x', 'ftp://127.0.0.1/x', 'http://10.0.0.1/x', 'http://[::1]:1/x', 'not a url', '',
    'Employee.Add', 'Employee.*', '*.*', 'Add', '*', 'Employee', 'Payroll', 'Nope.Nope', ['Employee.Add'], ['Add'], ['Employee'], ['*'], [], ['Employee.Add', 42],
    r.id, r.endpointId, r.gustoId, ABSENT, 'client_credentials', r.clientId, r.clientSecret, 'x'.repeat(33), 'é'.repeat(40),
    'a\u0000b', '\u0000', '\ud800', 'line\r\nbreak', '\u202e', 'http://127.0.0.1:9/\u0000', ['Employee.Add\u0000'], { 'X-N': 'a\u0000' }, { 'X-\u0000': 'v' },
    { 'X-Ok': 'v' }, { Host: 'evil' }, { 'Bad Name': 'v' }, { 'X-A': 'a\r\nb' }, 100, 599, 600, -1, 1.5, 1e308, true, false, null,
  );
}

/** A body shaped like the route's schema: some of its fields (and maybe an unknown one), random values. */
function shapedBody(props: string[], r: TenantRecords, hook: string, paycor: boolean) {
  const value = fc.oneof(
    { weight: 3, arbitrary: plausible(r, hook) }, { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) }, { weight: 1, arbitrary: fc.string({ maxLength: 3000 }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 100, unit: 'binary' }) }, { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 10, unit: 'binary' }), fc.string({ maxLength: 10, unit: 'binary' }), { maxKeys: 4 }) },
  );
  const name = fc.oneof(
    { weight: 5, arbitrary: props.length ? fc.constantFrom(...props) : fc.constant('x') },
    // Paycor-style names bind in any letter case.
    { weight: paycor ? 2 : 0, arbitrary: props.length ? fc.constantFrom(...props).map((p) => p.toLowerCase()) : fc.constant('x') },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  );
  return fc.array(fc.tuple(name, value), { maxLength: props.length + 2 }).map((pairs) => JSON.stringify(Object.fromEntries(pairs)));
}

type Body = { bytes: Buffer | undefined; what: string };

function bodyOf(route: Route, r: TenantRecords, hook: string): fc.Arbitrary<Body> {
  const text = (what: string) => (s: string): Body => ({ bytes: Buffer.from(s, 'utf8'), what });
  const shaped = shapedBody(route.bodyProps ?? [], r, hook, route.doc === 'paycor');
  return fc.oneof(
    { weight: route.bodyProps ? 1 : 3, arbitrary: fc.constant<Body>({ bytes: undefined, what: 'none' }) },
    { weight: route.bodyProps ? 8 : 1, arbitrary: shaped.map(text('shaped')) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null').map(text('json')) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200, unit: 'binary' }).map(text('text')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((a): Body => ({ bytes: Buffer.from(a), what: 'bytes' })) },
    // Invalid UTF-8 inside a string of an otherwise well-formed body.
    { weight: 2, arbitrary: fc.tuple(shaped, fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf])).map(([s, bad]): Body => {
      const i = s.indexOf('":"');
      const b = Buffer.from(s, 'utf8');
      if (i < 0) return { bytes: Buffer.concat([Buffer.from('{"a":"'), Buffer.from(bad), Buffer.from('"}')]), what: 'invalid-utf8' };
      const at = Buffer.byteLength(s.slice(0, i + 3));
      return { bytes: Buffer.concat([b.subarray(0, at), Buffer.from(bad), b.subarray(at)]), what: 'invalid-utf8' };
    }) },
    // Broken JSON: the shaped body cut short, or with a stray byte.
    { weight: 1, arbitrary: fc.tuple(shaped, fc.nat()).map(([s, n]) => s.slice(0, s.length > 1 ? n % (s.length - 1) : 0)).map(text('truncated')) },
    { weight: 1, arbitrary: fc.constantFrom(
      '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}', '{"url":"a","url":"b"}', '{"a":1e400}', '{"a":-0}', '[1,2,3]', '"just a string"',
      '{"a":"\\ud800"}', '{"a":"\\u0000"}', '\ufeff{}', '{}', 'null', '   ', '{"a":1}{"b":2}', 'NaN', '{"a":Infinity}',
    ).map(text('odd')) },
  );
}

const contentType = fc.oneof(
  { weight: 10, arbitrary: fc.constant<string | undefined>('application/json') },
  { weight: 4, arbitrary: fc.constantFrom<string | undefined>(
    undefined, 'application/json; charset=utf-8', 'application/json; charset=iso-8859-1', 'APPLICATION/JSON', 'text/plain', 'text/html', 'application/xml',
    'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/vnd.api+json', 'application/json, text/plain',
    '*/*', 'application/', ';;;', 'application/json; charset=utf-16',
  ) },
);

type Cred = 'valid' | 'none' | 'garbage' | 'other-api';

function authFor(route: Route, r: TenantRecords, cred: Cred): Record<string, string> {
  const own = route.doc === 'admin' ? r.auth.admin
    : route.doc === 'native' ? r.auth.native
    : route.doc === 'gusto' ? r.auth.gusto
    : /token$/i.test(route.path) ? r.auth.paycorToken : r.auth.paycor;
  switch (cred) {
    case 'valid': return own;
    case 'none': return {};
    case 'garbage': return Object.fromEntries(Object.keys(own).map((k) => [k, k === 'authorization' ? 'Bearer hat_garbage' : 'nope']));
    case 'other-api': return route.doc === 'admin' ? r.auth.native : r.auth.admin;
  }
}

const extraHeaders = fc.dictionary(
  fc.oneof(fc.constantFrom('x-forwarded-for', 'x-forwarded-host', 'accept', 'accept-encoding', 'idempotency-key', 'origin', 'content-encoding', 'expect', 'x-http-method-override', 'range'), fc.stringMatching(/^x-[a-z0-9-]{1,20}$/)),
  fc.oneof(fc.stringMatching(/^[ -~]{0,100}$/), fc.constantFrom('gzip', '*/*', 'text/event-stream', 'DELETE', 'bytes=0-1', '100-continue', '1.2.3.4, 10.0.0.1')),
  { maxKeys: 3 },
).map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.trim()])));

function requestOf(route: Route, r: TenantRecords, hook: string) {
  const cred = fc.oneof({ weight: 8, arbitrary: fc.constant<Cred>('valid') }, { weight: 2, arbitrary: fc.constantFrom<Cred>('none', 'garbage', 'other-api') });
  // Mostly the route's own method; sometimes one it does not have, or HEAD (which Fastify answers for every GET).
  const method = fc.oneof({ weight: 12, arbitrary: fc.constant(route.method) }, { weight: 1, arbitrary: fc.constantFrom('HEAD', 'OPTIONS', 'PATCH', 'DELETE', 'PUT', 'POST', 'GET') });
  return fc.record({
    method,
    cred,
    values: fc.array(pathValue(r), { minLength: route.params.length, maxLength: route.params.length }),
    query: fc.oneof({ weight: 1, arbitrary: fc.constant('') }, { weight: 2, arbitrary: queryOf(route.query, r) }),
    body: bodyOf(route, r, hook),
    contentType,
    extra: extraHeaders,
  });
}

// ---- the suite -------------------------------------------------------------------------

for (const engine of engines()) {
  describe(`hostile input on every route, by machine (${engine})`, () => {
    let h: TestHerald;
    let r: TenantRecords;
    let routes: Route[];
    const hook = 'http://127.0.0.1:9';
    const runs = engine === 'sqlite' ? RUNS : Math.max(3, Math.ceil(RUNS / 3));
    const seen = new Map<string, number>();
    const problems: string[] = [];

    before(async () => {
      h = await startHerald(engine, { HERALD_DISPATCH: 'off' });
      r = await tenantWithRecords(h, 'Hostile', hook, ADMIN);
      await tenantWithRecords(h, 'Bystander', hook, ADMIN);
      routes = await routesOf(h);
    });
    after(async () => { await h?.stop(); });

    /** The store as the last request left it: a refusal must leave it so; a success moves it on. */
    let baseline: Record<string, unknown> | null = null;

    /** Sends one request and checks every property; answers what went wrong, or null. */
    async function check(route: Route, method: string, path: string, headers: Record<string, string>, body: Buffer | undefined): Promise<string | null> {
      baseline ??= await storeSnapshot(h);
      const a = await rawRequest(h.url, { method, path, headers, body });
      seen.set(String(a.status), (seen.get(String(a.status)) ?? 0) + 1);
      const after = await storeSnapshot(h);
      const before = baseline;
      baseline = after;
      const where = `${method} ${path.slice(0, 200)} [${route.doc}] → ${a.status} ${a.text.slice(0, 300)}`;
      if (!(a.status >= 100 && a.status < 500)) return `5xx or no status: ${where}`;
      if (a.status < 400) return null;
      // A HEAD answer has no body to be in a shape.
      const shape = method === 'HEAD' ? null : shapeProblem(path, a);
      if (shape) return `${shape}: ${where}`;
      try { assert.deepEqual(after, before); } catch (err) { return `a refused call wrote to the store: ${where}\n${(err as Error).message.slice(0, 1500)}`; }
      return null;
    }

    test('the OpenAPI documents list the routes of every API, and the fixtures exist', () => {
      for (const d of ['admin', 'native', 'paycor', 'gusto']) assert.ok(routes.filter((x) => x.doc === d).length >= 5, `routes of ${d}`);
      assert.ok(routes.some((x) => x.path.startsWith('/portal/v1/')), 'portal routes');
      assert.ok(routes.some((x) => x.path.startsWith('/api/v1/listen')), 'listen routes');
      assert.ok(routes.length >= 55, `routes: ${routes.length}`);
    });

    test(`random requests to every route (${runs} runs each): never a 5xx, 4xx in the dialect's shape, a refusal writes nothing`, async (t) => {
      problems.length = 0;
      for (const route of routes) {
        // A delete that succeeded would leave the rest of the runs nothing to aim at.
        await fc.assert(fc.asyncProperty(requestOf(route, r, hook), async (q) => {
          const values = q.method === 'DELETE' ? q.values.map((v) => (v === r.endpointId || v === r.registrationId || v === r.gustoId || v === r.id ? ABSENT : v)) : q.values;
          let i = 0;
          const path = route.path.replace(/\{[^}]+\}/g, () => values[i++] ?? 'x') + (q.query ? `?${q.query}` : '');
          const headers: Record<string, string> = { ...q.extra, ...authFor(route, r, q.cred) };
          if (q.contentType !== undefined && q.body.bytes !== undefined) headers['content-type'] = q.contentType;
          // A refused content encoding is not what this is about: Herald reads bodies as sent.
          delete headers['content-encoding'];
          if (headers.expect !== undefined) delete headers.expect;
          const problem = await check(route, q.method, path, headers, q.body.bytes);
          // Every fault of every route is listed at the end, rather than the first one only.
          if (problem) problems.push(problem);
        }), { numRuns: runs, seed: SEED });
      }
      assert.deepEqual(problems, []);
      // The runs reached validation: most answers are refusals of the input, not of the credentials.
      const refusals = [...seen].filter(([s]) => s === '400' || s === '422' || s === '404').reduce((n, [, c]) => n + c, 0);
      const all = [...seen.values()].reduce((n, c) => n + c, 0);
      t.diagnostic(`${all} requests to ${routes.length} routes; statuses ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
      assert.ok(refusals > all / 3, `statuses ${JSON.stringify(Object.fromEntries(seen))}`);
    });

    test('huge, deeply nested and invalid UTF-8 bodies on every route that takes one', async () => {
      problems.length = 0;
      const big = Buffer.alloc(1024 * 1024 + 10, 'a');
      const bodies: [string, Buffer][] = [
        ['over 1 MB', Buffer.concat([Buffer.from('{"description":"'), big, Buffer.from('"}')])],
        ['nested arrays 100k deep', Buffer.from('['.repeat(100_000) + ']'.repeat(100_000))],
        ['nested objects 50k deep', Buffer.from('{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000))],
        ['data nested 10k deep', Buffer.from(`{"tenant_id":"${r.id}","entity":"Employee","event":"Add","entity_id":"1","data":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`)],
        ['100k keys', Buffer.from(JSON.stringify(Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]))))],
        ['invalid UTF-8 in a string', Buffer.concat([Buffer.from('{"url":"http://127.0.0.1:9/'), Buffer.from([0xff, 0xfe]), Buffer.from('","WebHookUri":"x","name":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])],
        ['UTF-16 with a BOM', Buffer.from('\ufeff{"name":"x"}', 'utf16le')],
      ];
      for (const route of routes.filter((x) => x.bodyProps !== null)) {
        for (const [what, body] of bodies) {
          let i = 0;
          const path = route.path.replace(/\{[^}]+\}/g, () => [r.endpointId, r.registrationId, r.gustoId, 's1'][route.doc === 'native' ? 0 : route.doc === 'paycor' ? 1 : 2]!.toString() + (i++ ? '' : ''));
          const problem = await check(route, route.method, path, { ...authFor(route, r, 'valid'), 'content-type': route.bodyTypes.includes('application/json') ? 'application/json' : route.bodyTypes[0]! }, body);
          if (problem) problems.push(`${what}: ${problem}`);
        }
      }
      assert.deepEqual(problems, []);
    });

    test('bytes no HTTP client would send in the request line and headers: a 4xx, and nothing written', async () => {
      // `legal`: valid HTTP after all (obs-text in a header value), so any answer but a 5xx.
      const cases: { what: string; method: string; path: string; headers: Record<string, string>; legal?: boolean }[] = [
        { what: 'a raw byte 0xff in the path', method: 'GET', path: `/api/v1/endpoints/\xff\xfe`, headers: r.auth.native },
        { what: 'a raw space in the path', method: 'GET', path: '/admin/v1/tenants/a b', headers: r.auth.admin },
        { what: 'no leading slash', method: 'GET', path: 'admin/v1/tenants', headers: r.auth.admin },
        { what: 'a bad percent-encoding in a path parameter', method: 'GET', path: '/v1/webhook_subscriptions/%E0%A4%A', headers: r.auth.gusto },
        { what: 'a bad percent-encoding in a Paycor path parameter', method: 'DELETE', path: '/eventsubscriptions/user/registrations/%ZZ', headers: r.auth.paycor },
        { what: 'a path parameter of 10,000 characters', method: 'GET', path: `/api/v1/endpoints/${'a'.repeat(10_000)}`, headers: r.auth.native },
        { what: 'a header value with a raw 0xff byte', method: 'GET', path: '/api/v1/endpoints', headers: { ...r.auth.native, 'x-odd': '\xff\xfe' }, legal: true },
        { what: 'an Authorization header of 8 KB', method: 'GET', path: '/api/v1/endpoints', headers: { authorization: `Bearer ${'a'.repeat(8000)}` } },
        { what: 'an unknown method', method: 'BREW', path: '/api/v1/endpoints', headers: r.auth.native },
        { what: 'a Paycor token request with a Basic header that is not base64', method: 'POST', path: '/Accounts/v2/Common/Token', headers: { ...r.auth.paycorToken, authorization: 'Basic %%%', 'content-type': 'application/x-www-form-urlencoded' } },
        { what: 'a Basic header whose parts are bad percent-encodings', method: 'POST', path: '/Accounts/v2/Common/Token', headers: { ...r.auth.paycorToken, authorization: `Basic ${Buffer.from('%E0%A4%A:%ZZ').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' } },
      ];
      for (const c of cases) {
        const before = await storeSnapshot(h);
        const body = c.method === 'POST' ? Buffer.from('grant_type=client_credentials') : undefined;
        const a = await rawRequest(h.url, { method: c.method, path: c.path, headers: c.headers, body });
        assert.ok(a.status >= (c.legal ? 100 : 400) && a.status < 500, `${c.what}: ${a.status} ${a.text.slice(0, 200)}`);
        assert.deepEqual(await storeSnapshot(h), before, c.what);
      }
    });

    // Faults the runs above found, each kept as its own case.
    test('fault: a Basic header with a bad percent-encoding on the Paycor token route was a 500; now a 400 naming Authorization', async () => {
      const a = await rawRequest(h.url, { method: 'POST', path: '/Accounts/v2/Common/Token', headers: { ...r.auth.paycorToken, authorization: `Basic ${Buffer.from('%E0%A4%A:%ZZ').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
      assert.equal(a.status, 400, a.text);
      assert.equal((a.json as any).error, 'invalid_request');
      assert.deepEqual(Object.keys((a.json as any).Source), ['Authorization']);
    });

    test('fault: a malformed body on a path under a dialect that no route matched was answered in Herald\'s shape; now in the dialect\'s', async () => {
      for (const [path, headers] of [['/eventsubscriptions/user/registrations/../..', r.auth.paycor], ['/v1/webhook_subscriptions/x/y/z', r.auth.gusto]] as const) {
        const a = await rawRequest(h.url, { method: 'PUT', path, headers: { ...headers, 'content-type': 'application/json' }, body: '{"a":' });
        assert.equal(a.status, 400, a.text);
        assert.equal(shapeProblem(path, a), null, a.text);
      }
    });

    test('fault: invalid UTF-8 in a JSON body was stored as U+FFFD; now a 400 naming the body, in each dialect', async () => {
      const bad = (json: string) => Buffer.from(json.replace('@', '\u0000'), 'utf8').map((b) => (b === 0 ? 0xff : b));
      const cases: [string, string, Record<string, string>, string][] = [
        ['POST', '/admin/v1/tenants', r.auth.admin, '{"name":"@"}'],
        ['PATCH', `/api/v1/endpoints/${r.endpointId}`, r.auth.native, '{"description":"@"}'],
        ['PUT', `/eventsubscriptions/user/registrations/${r.registrationId}`, r.auth.paycor, `{"WebHookUri":"${hook}/p","Description":"@"}`],
        ['PUT', `/v1/webhook_subscriptions/${r.gustoId}`, r.auth.gusto, '{"subscription_types":["Employee"],"url":"@"}'],
      ];
      for (const [method, path, headers, json] of cases) {
        const before = await storeSnapshot(h);
        const a = await rawRequest(h.url, { method, path, headers: { ...headers, 'content-type': 'application/json' }, body: Buffer.from(bad(json)) });
        assert.equal(a.status, 400, `${path}: ${a.text}`);
        assert.equal(shapeProblem(path, a), null, a.text);
        assert.match(a.text, /UTF-8/);
        assert.deepEqual(await storeSnapshot(h), before);
      }
    });

    test('the fixtures survived, so the runs above had live ids to aim at; and the snapshot sees a write', async () => {
      const a = await rawRequest(h.url, { method: 'GET', path: `/api/v1/endpoints/${r.endpointId}`, headers: r.auth.native });
      assert.equal(a.status, 200, a.text);
      const before = await storeSnapshot(h);
      const p = await rawRequest(h.url, { method: 'PATCH', path: `/api/v1/endpoints/${r.endpointId}`, headers: { ...r.auth.native, 'content-type': 'application/json' }, body: '{"description":"seen"}' });
      assert.equal(p.status, 200, p.text);
      assert.notDeepEqual(await storeSnapshot(h), before);
    });
  });
}

describe('fault: HEAD on a stream route', () => {
  let h: TestHerald;
  before(async () => { h = await startHerald('sqlite', { HERALD_STREAM_MAX_CONNECTIONS: '2' }); });
  after(async () => { await h?.stop(); });

  test('was answered never (Fastify runs the GET handler, the stream opens, its head waits for a body); now a prompt 404 in Herald\'s shape, and no listen session made', async () => {
    const t = await h.tenant('Head');
    const token = t.credentials.api_token;
    for (const [path, bearer] of [['/admin/v1/stream', ADMIN], ['/portal/v1/stream', token], ['/api/v1/listen?session=head', token]] as const) {
      const a = await rawRequest(h.url, { method: 'HEAD', path, headers: { authorization: `Bearer ${bearer}` } }, 2000);
      assert.equal(a.status, 404, path);
    }
    const subs = await h.herald.store.db.all('SELECT id FROM subscriptions');
    assert.deepEqual(subs, []);
    // The GET still opens the stream.
    const g = await rawRequest(h.url, { method: 'GET', path: '/admin/v1/stream', headers: { authorization: `Bearer ${ADMIN}` } }, 2000);
    assert.equal(g.status, 200);
    assert.match(g.headers['content-type']!, /text\/event-stream/);
  });
});

// With dispatch off (above) the listen stream is refused before its query is read; here it is on.
describe('herald listen\'s stream query, by machine (dispatch on)', () => {
  let h: TestHerald;
  before(async () => { h = await startHerald('sqlite'); });
  after(async () => { await h?.stop(); });

  test('random session and events values: a 4xx in Herald\'s shape that writes nothing, or a stream', async () => {
    const t = await h.tenant('Listener');
    const headers = { authorization: `Bearer ${t.credentials.api_token}` };
    const session = fc.oneof(fc.constantFrom('default', 's1', 'a.b-c_d', '-x', '.x', 'a'.repeat(64), 'a'.repeat(65), '%00', '%FF', 'x%20y', ''), fc.string({ maxLength: 70, unit: 'binary' }).map(enc));
    const events = fc.oneof(
      fc.constantFrom('Employee.*', '*.*', 'Employee.Add,Payroll.paid', 'Nope.Nope', 'Employee', '*', ',,,', 'Employee.Add,'.repeat(201), '%00', 'Employee.*%0d%0a'),
      fc.array(fc.constantFrom('Employee.Add', 'Payroll.*', 'x.y', '*.Add', 'Employee.', '.Add', 'É.x'), { maxLength: 5 }).map((l) => enc(l.join(','))),
      fc.string({ maxLength: 40, unit: 'binary' }).map(enc),
    );
    const statuses: number[] = [];
    const problems: string[] = [];
    await fc.assert(fc.asyncProperty(session, fc.option(events), async (sess, ev) => {
      const before = await storeSnapshot(h);
      const path = `/api/v1/listen?session=${sess}${ev === null ? '' : `&events=${ev}`}`;
      const a = await rawRequest(h.url, { method: 'GET', path, headers });
      statuses.push(a.status);
      if (a.status === 200) {
        // The stream was cut off: wait for its session to be paused again before the next run.
        for (let i = 0; i < 50 && (await h.herald.store.db.all('SELECT id FROM subscriptions WHERE paused = $1', [false])).length > 0; i++) await new Promise((ok) => setTimeout(ok, 20));
        return;
      }
      if (a.status < 400 || a.status >= 500) { problems.push(`${path} → ${a.status} ${a.text.slice(0, 200)}`); return; }
      const shape = shapeProblem(path, a);
      if (shape) problems.push(`${shape}: ${path} → ${a.text.slice(0, 200)}`);
      try { assert.deepEqual(await storeSnapshot(h), before); } catch { problems.push(`a refused call wrote: ${path}`); }
    }), { numRuns: Math.min(RUNS * 4, 400), seed: SEED });
    assert.deepEqual(problems, []);
    assert.ok(statuses.some((s) => s === 200) && statuses.some((s) => s === 400 || s === 422), JSON.stringify(statuses));
  });
});
