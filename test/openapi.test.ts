// The OpenAPI documents are valid 3.1, each route Herald serves is in exactly one of them,
// and what they say is what Herald does: the route schemas refuse bad input (in each
// dialect's shape) and real answers match the documented ones.
//
// The routes are collected with an onRoute hook on the very app Herald.start() builds:
// Fastify announces each new instance on a diagnostics channel, before any route exists.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import dc from 'node:diagnostics_channel';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ADMIN, startHerald, type TestHerald } from './helpers/herald.ts';
import { Receiver } from './helpers/receiver.ts';
import { DOCUMENT_NAMES, documentFor } from '../src/http/openapi.ts';

type AjvClass = typeof import('ajv/dist/2020.js').default;
const Ajv2020 = createRequire(import.meta.url)('ajv/dist/2020.js') as AjvClass;
// Documents are read as a client would: formats and Herald's own annotations are not enforced.
const ajv = new Ajv2020({ strict: false, validateFormats: false, allowUnionTypes: true });

/** Pages and documents, not API: the dashboard and the reference page itself. */
const NOT_API = /^\/(dashboard|openapi)(\/|$)/i;

type Doc = { openapi: string; info: { title: string }; servers: unknown[]; security: Record<string, string[]>[]; paths: Record<string, Record<string, any>>; components: { securitySchemes: Record<string, any> } };

const served: { method: string; url: string }[] = [];
let h: TestHerald;
let rx: Receiver;
const docs = {} as Record<(typeof DOCUMENT_NAMES)[number], Doc>;

/** Fastify's `:param` as OpenAPI's `{param}`. */
const openapiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

function operation(method: string, path: string): { doc: Doc; op: any } {
  for (const name of DOCUMENT_NAMES) {
    const op = docs[name].paths[path]?.[method.toLowerCase()];
    if (op) return { doc: docs[name], op };
  }
  throw new Error(`${method} ${path} is in no document`);
}

/** The answer matches the schema documented for its status (or for its class, 4XX). */
function assertDocumented(method: string, path: string, status: number, body: unknown) {
  const { op } = operation(method, path);
  const response = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`];
  assert.ok(response, `${method} ${path} documents no ${status} answer`);
  if (status === 204) return;
  const schema = response.content?.['application/json']?.schema;
  assert.ok(schema, `${method} ${path} ${status} documents a JSON body`);
  const check = ajv.compile(schema);
  assert.ok(check(body), `${method} ${path} ${status}: ${JSON.stringify(check.errors)} in ${JSON.stringify(body).slice(0, 300)}`);
}

describe('OpenAPI documents', () => {
  before(async () => {
    const collect = (msg: unknown) => {
      (msg as { fastify: FastifyInstance }).fastify.addHook('onRoute', (r: RouteOptions) => {
        for (const method of [r.method].flat()) served.push({ method, url: r.url! });
      });
    };
    dc.subscribe('fastify.initialization', collect);
    try {
      h = await startHerald('sqlite');
    } finally {
      dc.unsubscribe('fastify.initialization', collect);
    }
    rx = await new Receiver().start();
    for (const name of DOCUMENT_NAMES) {
      const r = await fetch(`${h.url}/openapi/${name}.json`);
      assert.equal(r.status, 200, name);
      docs[name] = await r.json() as Doc;
    }
  });

  after(async () => {
    await rx?.stop();
    await h?.stop();
  });

  test('each document is a valid OpenAPI 3.1 document', async () => {
    for (const name of DOCUMENT_NAMES) {
      const v = new Validator();
      const r = await v.validate(docs[name]);
      assert.equal(r.valid, true, `${name}: ${JSON.stringify(r.errors)?.slice(0, 2000)}`);
      assert.equal(v.version, '3.1', name);
      assert.ok(Object.keys(docs[name].paths).length > 0, `${name} documents some paths`);
    }
    assert.equal(new Set(DOCUMENT_NAMES.map((n) => docs[n].info.title)).size, 4, 'four titles');
    assert.equal((await fetch(`${h.url}/openapi/nope.json`)).status, 404);
  });

  test('each document says how to authenticate to its API', () => {
    const schemes = (n: (typeof DOCUMENT_NAMES)[number]) => docs[n].components.securitySchemes;
    assert.deepEqual(schemes('admin').adminToken, { ...schemes('admin').adminToken, type: 'http', scheme: 'bearer' });
    assert.deepEqual(docs.admin.security, [{ adminToken: [] }]);
    assert.deepEqual(docs.admin.paths['/healthz']!.get.security, [], 'health needs no token');
    assert.equal(schemes('native').tenantToken.scheme, 'bearer');
    const oauth = schemes('paycor').paycorOAuth;
    assert.equal(oauth.type, 'oauth2');
    assert.equal(oauth.flows.clientCredentials.tokenUrl, '/Accounts/v2/Common/Token');
    assert.deepEqual(schemes('paycor').subscriptionKey, { ...schemes('paycor').subscriptionKey, type: 'apiKey', in: 'header', name: 'Ocp-Apim-Subscription-Key' });
    assert.deepEqual(docs.paycor.security, [{ paycorOAuth: [], subscriptionKey: [] }], 'both the token and the key');
    assert.deepEqual(docs.paycor.paths['/Accounts/v2/Common/Token']!.post.security, [{ subscriptionKey: [] }]);
    assert.deepEqual(schemes('gusto').gustoToken, { ...schemes('gusto').gustoToken, type: 'apiKey', in: 'header', name: 'Authorization' });
    assert.equal(schemes('gusto').gustoBearer.scheme, 'bearer');
    assert.deepEqual(docs.gusto.security, [{ gustoToken: [] }, { gustoBearer: [] }], 'Token or Bearer');
    for (const n of DOCUMENT_NAMES) {
      const used = docs[n].security.flatMap((s) => Object.keys(s));
      assert.deepEqual(Object.keys(schemes(n)).filter((k) => !used.includes(k)).filter((k) => !Object.values(docs[n].paths).some((ops) => Object.values(ops).some((op: any) => op.security?.some((s: object) => k in s)))), [], `${n} declares only schemes it uses`);
    }
  });

  test('every route Herald serves is in exactly one document, with a summary, tags and its answers', () => {
    const api = served.filter((r) => !NOT_API.test(r.url));
    const gets = new Set(api.filter((r) => r.method === 'GET').map((r) => r.url));
    // Fastify adds HEAD beside each GET by itself; it is the GET's.
    const routes = api.filter((r) => !(r.method === 'HEAD' && gets.has(r.url)));
    assert.ok(routes.length >= 40, `Herald serves its API routes (${routes.length} seen)`);
    const problems: string[] = [];
    for (const r of routes) {
      const path = openapiPath(r.url);
      const holders = DOCUMENT_NAMES.filter((n) => docs[n].paths[path]?.[r.method.toLowerCase()]);
      if (holders.length !== 1) {
        problems.push(`${r.method} ${path} is in ${holders.length === 0 ? 'no document (give it a schema with summary and tags; see src/http/schemas.ts)' : holders.join(' and ')}`);
        continue;
      }
      if (documentFor(path) !== holders[0]) problems.push(`${r.method} ${path} is in ${holders[0]}, but its path places it in ${documentFor(path)}`);
      const op = docs[holders[0]!].paths[path]![r.method.toLowerCase()];
      if (!op.summary) problems.push(`${r.method} ${path} has no summary`);
      if (!op.tags?.length) problems.push(`${r.method} ${path} has no tags`);
      // The swagger plugin invents `200: Default Response` for a route whose schema has no `response`.
      const success = Object.entries(op.responses ?? {}).filter(([s]) => /^2/.test(s)) as [string, any][];
      if (success.length === 0 || success.some(([s, a]) => a.description === 'Default Response' || (s !== '204' && !a.content))) {
        problems.push(`${r.method} ${path} documents no answer of its own`);
      }
    }
    // And nothing is documented that Herald does not serve.
    const servedKeys = new Set(routes.map((r) => `${r.method} ${openapiPath(r.url)}`));
    for (const n of DOCUMENT_NAMES) {
      for (const [path, ops] of Object.entries(docs[n].paths)) {
        for (const m of Object.keys(ops)) if (!servedKeys.has(`${m.toUpperCase()} ${path}`)) problems.push(`${m.toUpperCase()} ${path} is documented in ${n} but not served`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test('the reference page is served from Herald itself and lists the four documents', async () => {
    const page = await fetch(`${h.url}/openapi/`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /swagger-ui/);
    assert.doesNotMatch(html, /<(script|link)[^>]+(src|href)="(https?:)?\/\//, 'no script or style from another host');
    const init = await (await fetch(`${h.url}/openapi/static/swagger-initializer.js`)).text();
    for (const n of DOCUMENT_NAMES) assert.ok(init.includes(`/openapi/${n}.json`), `the page offers ${n}`);
    const bundle = await fetch(`${h.url}/openapi/static/swagger-ui-bundle.js`);
    assert.equal(bundle.status, 200);
    assert.ok((await bundle.arrayBuffer()).byteLength > 100_000, 'the UI itself comes from the package');
  });

  describe('the schemas are what validates requests', () => {
    test('native POST /endpoints with a wrong type is a 400 naming it, found by the schema before any hand check', async () => {
      const t = await h.tenant();
      // The route's own code checks the url first (and `not a url` fails it); only the schema looks at every field's type before that.
      const r = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: 'not a url', paused: 'yes' });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.deepEqual(r.body, { error: { code: 'invalid_request', message: 'paused must be true or false', field: 'paused' } });
      const list = await h.call('GET', '/api/v1/endpoints', t.credentials.api_token);
      assert.deepEqual(list.body.data, [], 'nothing was written');
      // The document's request schema says the same about the same bodies.
      const schema = docs.native.paths['/api/v1/endpoints']!.post.requestBody.content['application/json'].schema;
      const check = ajv.compile(schema);
      assert.equal(check({ url: 'not a url', paused: 'yes' }), false);
      assert.equal(check({ url: 'https://example.com/hook', bogus: 1 }), false, 'unknown fields are refused, as documented');
      assert.equal(check({ url: 'https://example.com/hook', filters: ['Employee.*'], paused: false }), true);
    });

    test('admin POST /events: a missing field is named before an unknown one, as the schema orders them', async () => {
      const t = await h.tenant();
      const r = await h.admin('POST', '/admin/v1/events', { tenant_id: t.id, entity: 'Employee', event: 'Add', bogus: 1 });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.field, 'entity_id');
      assert.match(r.body.error.message, /required/);
      const q = await h.admin('GET', '/admin/v1/deliveries?limit=0');
      assert.deepEqual(q.body, { error: { code: 'invalid_request', message: 'limit must be an integer from 1 to 500', field: 'limit' } });
    });

    test('Paycor: names bind in any case before the schema checks them, errors in Paycor\'s shape; Gusto: field errors are 422', async () => {
      const t = await h.tenant();
      const key = { 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key };
      const tok = await h.call('POST', '/Accounts/v2/Common/Token', null, `grant_type=client_credentials&client_id=${t.credentials.client_id}&client_secret=${t.credentials.client_secret}`, { ...key, 'content-type': 'application/x-www-form-urlencoded' });
      assert.equal(tok.status, 200, JSON.stringify(tok.body));
      const badTok = await h.call('POST', '/Accounts/v2/Common/Token', null, { grant_type: 'client_credentials', client_id: 5 }, key);
      assert.equal(badTok.status, 400);
      assert.equal(badTok.body.error, 'invalid_request', 'the token request refuses in OAuth\'s shape');
      const bad = await h.call('POST', '/eventsubscriptions/user/registrations', tok.body.access_token, { webhookuri: `${rx.url}/p`, ISPAUSED: 'no' }, key);
      assert.equal(bad.status, 400);
      assert.deepEqual(Object.keys(bad.body).sort(), ['CorrelationId', 'Detail', 'Source', 'Title']);
      assert.deepEqual(bad.body.Source, { IsPaused: 'must be true or false' });
      const good = await h.call('POST', '/eventsubscriptions/user/registrations', tok.body.access_token, { webhookuri: `${rx.url}/p`, ispaused: true, SomethingElse: 1 }, key);
      assert.equal(good.status, 201, JSON.stringify(good.body));
      assert.equal(good.body.WebHookUri, `${rx.url}/p`);
      assertDocumented('POST', '/eventsubscriptions/user/registrations', 201, good.body);
      const g = await h.call('POST', '/v1/webhook_subscriptions', null, { url: `${rx.url}/g`, subscription_types: [7] }, { authorization: `Token ${t.credentials.api_token}` });
      assert.equal(g.status, 422);
      assert.deepEqual(g.body.errors.map((e: any) => [e.error_key, e.category]), [['subscription_types', 'invalid_attribute_value']]);
      const q = await h.call('GET', '/v1/events?limit=0', null, undefined, { authorization: `Token ${t.credentials.api_token}` });
      assert.equal(q.status, 422);
      assert.equal(q.body.errors[0].error_key, 'limit');
    });
  });

  test('real answers match the documented ones', async () => {
    const made = await h.admin('POST', '/admin/v1/tenants', { name: 'Doc' });
    assertDocumented('POST', '/admin/v1/tenants', 201, made.body);
    const t = made.body;
    const token = t.credentials.api_token;
    assertDocumented('GET', '/admin/v1/tenants', 200, (await h.admin('GET', '/admin/v1/tenants')).body);
    assertDocumented('GET', '/admin/v1/event-types', 200, (await h.admin('GET', '/admin/v1/event-types')).body);
    const ep = await h.call('POST', '/api/v1/endpoints', token, { url: `${rx.url}/n`, filters: ['Employee.*'] });
    assertDocumented('POST', '/api/v1/endpoints', 201, ep.body);
    const pub = await h.admin('POST', '/admin/v1/events', { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 7, data: { a: 1 } });
    assertDocumented('POST', '/admin/v1/events', 202, pub.body);
    await rx.waitFor(1);
    const ev = await h.admin('GET', `/admin/v1/events/${pub.body.id}`);
    assertDocumented('GET', '/admin/v1/events/{id}', 200, ev.body);
    const page = await h.admin('GET', `/admin/v1/deliveries?tenant_id=${t.id}`);
    assertDocumented('GET', '/admin/v1/deliveries', 200, page.body);
    assertDocumented('GET', '/admin/v1/deliveries/{id}', 200, (await h.admin('GET', `/admin/v1/deliveries/${page.body.data[0].id}`)).body);
    assertDocumented('GET', '/api/v1/endpoints/{id}/attempts', 200, (await h.call('GET', `/api/v1/endpoints/${ep.body.id}/attempts`, token)).body);
    assertDocumented('POST', '/api/v1/endpoints/{id}/rotate-secret', 200, (await h.call('POST', `/api/v1/endpoints/${ep.body.id}/rotate-secret`, token)).body);
    const sub = await h.call('POST', '/v1/webhook_subscriptions', null, { url: `${rx.url}/g`, subscription_types: ['Employee'] }, { authorization: `Token ${token}` });
    assertDocumented('POST', '/v1/webhook_subscriptions', 201, sub.body);
    assertDocumented('GET', '/v1/events', 200, (await h.call('GET', '/v1/events', token)).body);
    assertDocumented('GET', '/healthz', 200, (await h.call('GET', '/healthz', null)).body);
    const refused = await h.call('GET', '/api/v1/endpoints', ADMIN);
    assertDocumented('GET', '/api/v1/endpoints', 401, refused.body);
  });
});
