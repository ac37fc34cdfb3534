// Bad input to every admin and native route is answered with a 4xx naming the field.
//
// One real Herald (SQLite) serves every case. Each case is one hostile or malformed
// request with the exact status it must get, and for 400/422 the field the error names.
// After the bad requests, the suite checks that nothing half-written exists, and it ends
// with one good publish to prove the "nothing arrived" checks could have seen something.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, startHerald, type TestHerald } from './helpers/herald.ts';
import { Receiver, eventually, sleep } from './helpers/receiver.ts';
import { DEFAULT_CATALOG } from '../src/domain/eventTypes.ts';

type Tok = 'admin' | 'pub' | 'fresh' | 'none' | 'garbage' | 'basic';

interface Ctx {
  h: TestHerald;
  receiver: Receiver;
  /** The tenant that owns one endpoint (pointing at the receiver) and gets the publish attempts. */
  pub: { id: string; token: string };
  /** A tenant with no endpoints: every rejected POST /api/v1/endpoints is sent as it. */
  fresh: { id: string; token: string };
  /** pub's endpoint, as first created. */
  ep: Record<string, unknown> & { id: string; url: string };
}

interface Case {
  name: string;
  method: string;
  path: string;
  token: Tok;
  /** A string is sent as is (with content-type application/json unless headers say otherwise). */
  body?: unknown | ((c: Ctx) => unknown);
  headers?: Record<string, string>;
  status: number;
  /** For 400/422: the field the error must name; null only for failures of the URL itself, which name no field. */
  field?: string | RegExp | null;
  /** Optional: a pattern the error message must match. */
  message?: RegExp;
}

// An id of the right shape that names nothing.
const ABSENT = '0190a0a0-0000-7000-8000-000000000000';

let ctx: Ctx;
const statuses: { what: string; status: number }[] = [];

function tokenOf(t: Tok): { token: string | null; headers: Record<string, string> } {
  switch (t) {
    case 'admin': return { token: ADMIN, headers: {} };
    case 'pub': return { token: ctx.pub.token, headers: {} };
    case 'fresh': return { token: ctx.fresh.token, headers: {} };
    case 'garbage': return { token: 'hat_not-a-real-token', headers: {} };
    case 'basic': return { token: null, headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` } };
    case 'none': return { token: null, headers: {} };
  }
}

function fill(path: string): string {
  return path
    .replaceAll('{ep}', ctx.ep.id)
    .replaceAll('{pub}', ctx.pub.id)
    .replaceAll('{absent}', ABSENT);
}

async function send(c: Pick<Case, 'method' | 'path' | 'token' | 'body' | 'headers'>) {
  const { token, headers } = tokenOf(c.token);
  const body = typeof c.body === 'function' ? (c.body as (x: Ctx) => unknown)(ctx) : c.body;
  const path = fill(c.path);
  const r = await ctx.h.call(c.method, path, token, body, { ...headers, ...(c.headers ?? {}) });
  statuses.push({ what: `${c.method} ${path}`, status: r.status });
  return r;
}

function assertErrorShape(r: { status: number; body: any }, c: Pick<Case, 'status' | 'field' | 'message'>) {
  const dump = JSON.stringify(r.body)?.slice(0, 400);
  assert.ok(r.status < 500, `never a 5xx; got ${r.status} ${dump}`);
  assert.equal(r.status, c.status, `status; body ${dump}`);
  assert.ok(r.body && typeof r.body === 'object' && !Array.isArray(r.body), `a JSON object body; got ${dump}`);
  assert.deepEqual(Object.keys(r.body), ['error'], `only an error member; got ${dump}`);
  const e = r.body.error;
  assert.equal(typeof e.code, 'string');
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0);
  const expectedCode = { 400: 'invalid_request', 401: 'unauthorized', 404: 'not_found', 413: 'invalid_request', 415: 'invalid_request', 422: 'unprocessable' }[c.status];
  if (expectedCode) assert.equal(e.code, expectedCode, `error.code; body ${dump}`);
  if (c.status === 400 || c.status === 422 || c.status === 413 || c.status === 415) {
    assert.ok(c.field !== undefined, 'a 4xx case about the input must say which field it expects');
  }
  if (c.field instanceof RegExp) assert.match(String(e.field), c.field, `error.field; body ${dump}`);
  else if (c.field !== undefined && c.field !== null) assert.equal(e.field, c.field, `error.field; body ${dump}`);
  if (c.message) assert.match(e.message, c.message);
}

function run(c: Case) {
  const shown = c.path.length > 70 ? `${c.path.slice(0, 60)}…(${c.path.length} chars)` : c.path;
  test(`${c.method} ${shown} — ${c.name} → ${c.status}${c.field ? ` (${c.field})` : ''}`, async () => {
    const r = await send(c);
    assertErrorShape(r, c);
    if (c.status === 401) assert.equal(r.headers.get('www-authenticate'), 'Bearer');
  });
}

// ---- building blocks -------------------------------------------------------------------

const long = (n: number, ch = 'a') => ch.repeat(n);

/** A valid event for the `pub` tenant, with fields overridden or removed. */
function ev(over: Record<string, unknown> = {}, drop: string[] = []): (c: Ctx) => Record<string, unknown> {
  return (c) => {
    const e: Record<string, unknown> = { tenant_id: c.pub.id, entity: 'Employee', event: 'Add', entity_id: 'emp-1', data: { salary: 1 }, ...over };
    for (const k of drop) delete e[k];
    return e;
  };
}
const evNow = (c: Ctx, over: Record<string, unknown> = {}, drop: string[] = []) => ev(over, drop)(c);
/** A valid event as raw JSON text whose data is `depth` objects deep (too deep to build with JSON.stringify). */
function deepData(c: Ctx, depth: number): string {
  const head = JSON.stringify(evNow(c, {}, ['data'])).slice(0, -1);
  return `${head},"data":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
}

/** A valid endpoint body (pointing at the allow-listed loopback receiver), with fields overridden or removed. */
function endpoint(over: Record<string, unknown> = {}, drop: string[] = []): (c: Ctx) => Record<string, unknown> {
  return (c) => {
    const e: Record<string, unknown> = { url: `${c.receiver.url}/hook`, description: 'd', filters: ['Employee.*'], paused: false, ...over };
    for (const k of drop) delete e[k];
    return e;
  };
}

const BAD_JSON = '{"name": "Acme",';
const PROTO = '{"name":"x","__proto__":{"isAdmin":true}}';
const CTOR = '{"name":"x","constructor":{"prototype":{"isAdmin":true}}}';

/** The body-as-a-whole failures every JSON-taking route must refuse with field `body`. */
function wholeBodyCases(method: string, path: string, token: Tok): Case[] {
  return [
    { name: 'invalid JSON', method, path, token, body: BAD_JSON, status: 400, field: 'body', message: /JSON/ },
    { name: 'a JSON array instead of an object', method, path, token, body: '[{"url":"x"}]', status: 400, field: 'body' },
    { name: 'a JSON string instead of an object', method, path, token, body: '"hello"', status: 400, field: 'body' },
    { name: 'JSON null', method, path, token, body: 'null', status: 400, field: 'body' },
    { name: 'a number', method, path, token, body: '42', status: 400, field: 'body' },
    { name: 'empty body with a JSON content type', method, path, token, body: '', headers: { 'content-type': 'application/json' }, status: 400, field: 'body' },
    { name: '__proto__ poisoning', method, path, token, body: PROTO, status: 400, field: 'body' },
    { name: 'constructor.prototype poisoning', method, path, token, body: CTOR, status: 400, field: 'body' },
    { name: 'nested __proto__ poisoning', method, path, token, body: '{"data":{"a":{"__proto__":{"polluted":1}}}}', status: 400, field: 'body' },
  ];
}

// ---- every route, for the auth checks --------------------------------------------------

const ADMIN_ROUTES: [string, string][] = [
  ['POST', '/admin/v1/tenants'],
  ['GET', '/admin/v1/tenants'],
  ['GET', '/admin/v1/tenants/{pub}'],
  ['DELETE', '/admin/v1/tenants/{pub}'],
  ['GET', '/admin/v1/event-types'],
  ['POST', '/admin/v1/event-types'],
  ['POST', '/admin/v1/events'],
  ['POST', '/admin/v1/events/batch'],
  ['GET', `/admin/v1/events/${ABSENT}`],
  ['GET', '/admin/v1/deliveries'],
  ['GET', `/admin/v1/deliveries/${ABSENT}`],
  ['POST', `/admin/v1/deliveries/${ABSENT}/retry`],
];

const NATIVE_ROUTES: [string, string][] = [
  ['POST', '/api/v1/endpoints'],
  ['GET', '/api/v1/endpoints'],
  ['GET', '/api/v1/endpoints/{ep}'],
  ['PATCH', '/api/v1/endpoints/{ep}'],
  ['PUT', '/api/v1/endpoints/{ep}'],
  ['DELETE', '/api/v1/endpoints/{ep}'],
  ['POST', '/api/v1/endpoints/{ep}/rotate-secret'],
  ['GET', '/api/v1/endpoints/{ep}/deliveries'],
  ['GET', `/api/v1/endpoints/{ep}/deliveries/${ABSENT}`],
  ['GET', '/api/v1/endpoints/{ep}/attempts'],
];

/** A body that would be accepted, so a 401 can only come from the token. */
function goodBodyFor(method: string, path: string): Case['body'] {
  if (method === 'GET' || method === 'DELETE') return undefined;
  if (path === '/admin/v1/tenants') return { name: 'Sneaky' };
  if (path === '/admin/v1/event-types') return { entity: 'Sneaky', event: 'Thing' };
  if (path === '/admin/v1/events') return ev();
  if (path === '/admin/v1/events/batch') return (c: Ctx) => ({ events: [evNow(c)] });
  if (path === '/api/v1/endpoints' || path.endsWith('{ep}')) return endpoint({ url: 'http://127.0.0.1:1/sneaky' });
  return undefined;
}

describe('bad input to every admin and native route is answered with a 4xx naming the field', () => {
  before(async () => {
    const h = await startHerald('sqlite');
    const receiver = await new Receiver().start();
    const p = await h.tenant('Publisher');
    const f = await h.tenant('Fresh');
    const made = await h.call('POST', '/api/v1/endpoints', p.credentials.api_token, { url: `${receiver.url}/hook`, description: 'the one endpoint' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const { secret: _secret, ...view } = made.body;
    ctx = { h, receiver, pub: { id: p.id, token: p.credentials.api_token }, fresh: { id: f.id, token: f.credentials.api_token }, ep: view };
  });

  after(async () => {
    await ctx?.receiver.stop();
    await ctx?.h.stop();
  });

  describe('tokens', () => {
    for (const [method, path] of ADMIN_ROUTES) {
      run({ name: 'no Authorization header', method, path, token: 'none', body: goodBodyFor(method, path), status: 401 });
      run({ name: "a tenant's api_token on the admin API", method, path, token: 'pub', body: goodBodyFor(method, path), status: 401 });
      run({ name: 'a Basic header carrying the admin token', method, path, token: 'basic', body: goodBodyFor(method, path), status: 401 });
    }
    for (const [method, path] of NATIVE_ROUTES) {
      run({ name: 'no Authorization header', method, path, token: 'none', body: goodBodyFor(method, path), status: 401 });
      run({ name: 'the admin token on the tenant API', method, path, token: 'admin', body: goodBodyFor(method, path), status: 401 });
      run({ name: 'an unknown api_token', method, path, token: 'garbage', body: goodBodyFor(method, path), status: 401 });
    }
    run({ name: 'auth is checked before the body is parsed', method: 'POST', path: '/admin/v1/tenants', token: 'none', body: BAD_JSON, status: 401 });
    run({ name: 'auth is checked before the body is parsed', method: 'POST', path: '/api/v1/endpoints', token: 'admin', body: BAD_JSON, status: 401 });
    run({ name: 'a token with trailing junk', method: 'GET', path: '/admin/v1/tenants', token: 'none', headers: { authorization: `Bearer ${ADMIN} extra` }, status: 401 });
    run({ name: 'the admin token with a character changed', method: 'GET', path: '/admin/v1/tenants', token: 'none', headers: { authorization: `Bearer ${ADMIN.slice(0, -1)}X` }, status: 401 });
    run({ name: 'the admin token as a prefix', method: 'GET', path: '/admin/v1/tenants', token: 'none', headers: { authorization: `Bearer ${ADMIN}${ADMIN}` }, status: 401 });
  });

  describe('admin: POST /tenants', () => {
    const P = '/admin/v1/tenants';
    for (const c of wholeBodyCases('POST', P, 'admin')) run(c);
    run({ name: 'missing name', method: 'POST', path: P, token: 'admin', body: {}, status: 400, field: 'name', message: /required/ });
    run({ name: 'name is a number', method: 'POST', path: P, token: 'admin', body: { name: 42 }, status: 400, field: 'name' });
    run({ name: 'name is an array', method: 'POST', path: P, token: 'admin', body: { name: ['Acme'] }, status: 400, field: 'name' });
    run({ name: 'name is empty', method: 'POST', path: P, token: 'admin', body: { name: '' }, status: 400, field: 'name' });
    run({ name: 'name is 201 characters', method: 'POST', path: P, token: 'admin', body: { name: long(201) }, status: 400, field: 'name' });
    run({ name: 'an unknown extra field', method: 'POST', path: P, token: 'admin', body: { name: 'Acme', is_admin: true }, status: 400, field: 'is_admin' });
    run({ name: 'a caller-chosen id', method: 'POST', path: P, token: 'admin', body: { name: 'Acme', id: ABSENT }, status: 400, field: 'id' });
    run({ name: 'a text/plain body', method: 'POST', path: P, token: 'admin', body: 'name=Acme', headers: { 'content-type': 'text/plain' }, status: 400, field: 'body' });
  });

  describe('admin: GET/DELETE /tenants/:id', () => {
    run({ name: 'unknown uuid', method: 'GET', path: `/admin/v1/tenants/${ABSENT}`, token: 'admin', status: 404 });
    run({ name: 'not an id at all', method: 'GET', path: '/admin/v1/tenants/nope', token: 'admin', status: 404 });
    run({ name: 'SQL-ish id', method: 'GET', path: `/admin/v1/tenants/${encodeURIComponent("' OR '1'='1")}`, token: 'admin', status: 404 });
    run({ name: 'unknown uuid', method: 'DELETE', path: `/admin/v1/tenants/${ABSENT}`, token: 'admin', status: 404 });
    run({ name: 'SQL-ish id', method: 'DELETE', path: `/admin/v1/tenants/${encodeURIComponent("' OR '1'='1")}`, token: 'admin', status: 404 });
  });

  describe('admin: POST /event-types', () => {
    const P = '/admin/v1/event-types';
    for (const c of wholeBodyCases('POST', P, 'admin')) run(c);
    run({ name: 'missing entity', method: 'POST', path: P, token: 'admin', body: { event: 'Thing' }, status: 400, field: 'entity' });
    run({ name: 'missing event', method: 'POST', path: P, token: 'admin', body: { entity: 'Widget' }, status: 400, field: 'event' });
    run({ name: 'entity starts with a digit', method: 'POST', path: P, token: 'admin', body: { entity: '1Widget', event: 'Thing' }, status: 400, field: 'entity' });
    run({ name: 'entity has a dot', method: 'POST', path: P, token: 'admin', body: { entity: 'Widget.Sub', event: 'Thing' }, status: 400, field: 'entity' });
    run({ name: 'entity is a wildcard', method: 'POST', path: P, token: 'admin', body: { entity: '*', event: 'Thing' }, status: 400, field: 'entity' });
    run({ name: 'entity is 65 characters', method: 'POST', path: P, token: 'admin', body: { entity: 'W' + long(64), event: 'Thing' }, status: 400, field: 'entity' });
    run({ name: 'event is a number', method: 'POST', path: P, token: 'admin', body: { entity: 'Widget', event: 5 }, status: 400, field: 'event' });
    run({ name: 'event has a space', method: 'POST', path: P, token: 'admin', body: { entity: 'Widget', event: 'was made' }, status: 400, field: 'event' });
    run({ name: 'description is 501 characters', method: 'POST', path: P, token: 'admin', body: { entity: 'Widget', event: 'Thing', description: long(501) }, status: 400, field: 'description' });
    run({ name: 'description is an object', method: 'POST', path: P, token: 'admin', body: { entity: 'Widget', event: 'Thing', description: {} }, status: 400, field: 'description' });
    run({ name: 'an unknown extra field', method: 'POST', path: P, token: 'admin', body: { entity: 'Widget', event: 'Thing', schema: {} }, status: 400, field: 'schema' });
  });

  describe('admin: POST /events', () => {
    const P = '/admin/v1/events';
    const bad = (name: string, body: Case['body'], field: string, status = 400) => run({ name, method: 'POST', path: P, token: 'admin', body, status, field });
    for (const c of wholeBodyCases('POST', P, 'admin')) run(c);
    bad('missing tenant_id', ev({}, ['tenant_id']), 'tenant_id');
    bad('tenant_id is a number', ev({ tenant_id: 7 }), 'tenant_id');
    bad('tenant_id is 65 characters', ev({ tenant_id: long(65) }), 'tenant_id');
    bad('tenant_id names no tenant', ev({ tenant_id: ABSENT }), 'tenant_id', 422);
    bad('missing entity', ev({}, ['entity']), 'entity');
    bad('entity has a hyphen', ev({ entity: 'Employee-X' }), 'entity');
    bad('entity is 65 characters', ev({ entity: 'E' + long(64) }), 'entity');
    bad('missing event', ev({}, ['event']), 'event');
    bad('event is a boolean', ev({ event: true }), 'event');
    bad('an event type not in the catalog', ev({ event: 'Exploded' }), 'event', 422);
    bad('an entity not in the catalog', ev({ entity: 'Spaceship' }), 'event', 422);
    bad('missing entity_id', ev({}, ['entity_id']), 'entity_id');
    bad('entity_id is an object', ev({ entity_id: {} }), 'entity_id');
    bad('entity_id is a fraction', ev({ entity_id: 1.5 }), 'entity_id');
    bad('entity_id is empty', ev({ entity_id: '' }), 'entity_id');
    bad('entity_id is 201 characters', ev({ entity_id: long(201) }), 'entity_id');
    bad('entity_uri is a number', ev({ entity_uri: 5 }), 'entity_uri');
    bad('entity_uri is 2001 characters', ev({ entity_uri: 'https://x/' + long(1991) }), 'entity_uri');
    bad('parent_type is empty', ev({ parent_type: '' }), 'parent_type');
    bad('parent_type has a space', ev({ parent_type: 'Pay Schedule' }), 'parent_type');
    bad('parent_id is a boolean', ev({ parent_id: true }), 'parent_id');
    bad('data is an array', ev({ data: [1, 2] }), 'data');
    bad('data is a string', ev({ data: 'x' }), 'data');
    bad('data is a number', ev({ data: 3 }), 'data');
    bad('data is nested 10,000 objects deep (60 KB)', (c: Ctx) => deepData(c, 10_000), 'data');
    bad('data is over 256 KB', ev({ data: { blob: long(300 * 1024) } }), 'data');
    bad('occurred_at is prose', ev({ occurred_at: 'yesterday' }), 'occurred_at');
    bad('occurred_at is a date without a time', ev({ occurred_at: '2024-05-01' }), 'occurred_at');
    bad('occurred_at has month 13', ev({ occurred_at: '2024-13-45T00:00:00Z' }), 'occurred_at');
    bad('occurred_at is in milliseconds', ev({ occurred_at: 1_700_000_000_000 }), 'occurred_at');
    bad('occurred_at is negative', ev({ occurred_at: -5 }), 'occurred_at');
    bad('occurred_at is a boolean', ev({ occurred_at: true }), 'occurred_at');
    bad('idempotency_key is empty', ev({ idempotency_key: '' }), 'idempotency_key');
    bad('idempotency_key is 201 characters', ev({ idempotency_key: long(201) }), 'idempotency_key');
    bad('idempotency_key is a number', ev({ idempotency_key: 5 }), 'idempotency_key');
    bad('an unknown extra field', ev({ type: 'Employee.Add' }), 'type');
    run({ name: 'a body over the 1 MB limit', method: 'POST', path: P, token: 'admin', body: ev({ data: { blob: long(1100 * 1024) } }), status: 413, field: 'body' });
  });

  describe('admin: POST /events/batch', () => {
    const P = '/admin/v1/events/batch';
    const bad = (name: string, body: Case['body'], field: string, status = 400) => run({ name, method: 'POST', path: P, token: 'admin', body, status, field });
    for (const c of wholeBodyCases('POST', P, 'admin')) run(c);
    bad('missing events', {}, 'events');
    bad('events is a string', { events: 'all of them' }, 'events');
    bad('events is an object', (c: Ctx) => ({ events: { 0: evNow(c) } }), 'events');
    bad('an empty batch', { events: [] }, 'events');
    bad('1001 events', (c: Ctx) => ({ events: Array.from({ length: 1001 }, (_, i) => evNow(c, { entity_id: `e${i}` })) }), 'events');
    bad('an unknown extra field', (c: Ctx) => ({ events: [evNow(c)], dry_run: true }), 'dry_run');
    bad('event #2 is not an object', (c: Ctx) => ({ events: [evNow(c), 'Employee.Add'] }), 'events[1]');
    bad('event #2 is an array', (c: Ctx) => ({ events: [evNow(c), [evNow(c)]] }), 'events[1]');
    bad('event #3 has a bad entity', (c: Ctx) => ({ events: [evNow(c), evNow(c), evNow(c, { entity: 'bad entity' })] }), 'events[2].entity');
    bad('event #2 lacks entity_id', (c: Ctx) => ({ events: [evNow(c), evNow(c, {}, ['entity_id'])] }), 'events[1].entity_id');
    bad('event #2 has bad occurred_at', (c: Ctx) => ({ events: [evNow(c), evNow(c, { occurred_at: 'soon' })] }), 'events[1].occurred_at');
    bad('event #2 has array data', (c: Ctx) => ({ events: [evNow(c), evNow(c, { data: [1] })] }), 'events[1].data');
    bad('event #2 has data nested 10,000 objects deep', (c: Ctx) => `{"events":[${JSON.stringify(evNow(c))},${deepData(c, 10_000)}]}`, 'events[1].data');
    bad('event #2 has an extra field', (c: Ctx) => ({ events: [evNow(c), evNow(c, { priority: 'high' })] }), 'events[1].priority');
    bad('event #2 has an over-long idempotency_key', (c: Ctx) => ({ events: [evNow(c), evNow(c, { idempotency_key: long(201) })] }), 'events[1].idempotency_key');
    bad('event #2 is not in the catalog', (c: Ctx) => ({ events: [evNow(c), evNow(c, { event: 'Exploded' })] }), 'events[1].event', 422);
    bad('event #2 names no tenant', (c: Ctx) => ({ events: [evNow(c, { idempotency_key: 'batch-k1' }), evNow(c, { tenant_id: ABSENT })] }), 'events[1].tenant_id', 422);
    // The tenants are named before the catalog, even when an earlier event has an unknown type.
    bad('event #1 of no known type, #2 of no tenant', (c: Ctx) => ({ events: [evNow(c, { entity: 'Invoice', event: 'Refunded' }), evNow(c, { tenant_id: ABSENT })] }), 'events[1].tenant_id', 422);
    bad('event #2 of no known type', (c: Ctx) => ({ events: [evNow(c), evNow(c, { entity: 'Invoice', event: 'Refunded' })] }), 'events[1].event', 422);
    bad('1000 events (the limit) with only the last one bad', (c: Ctx) => ({
      events: Array.from({ length: 1000 }, (_, i) => (i === 999 ? evNow(c, {}, ['entity_id']) : evNow(c, { entity_id: `e${i}` }))),
    }), 'events[999].entity_id');
  });

  describe('admin: GET /events/:id', () => {
    run({ name: 'unknown uuid', method: 'GET', path: `/admin/v1/events/${ABSENT}`, token: 'admin', status: 404 });
    run({ name: 'not a uuid', method: 'GET', path: '/admin/v1/events/nope', token: 'admin', status: 404 });
    run({ name: 'a 100-character id', method: 'GET', path: `/admin/v1/events/${long(100)}`, token: 'admin', status: 404 });
    // Past Fastify's maxParamLength (100) the router answers 414 itself; it must still be Herald's error shape.
    run({ name: 'a 2000-character id', method: 'GET', path: `/admin/v1/events/${long(2000)}`, token: 'admin', status: 414, field: null });
    run({ name: 'a bad percent-encoding in the id', method: 'GET', path: '/admin/v1/events/%E0%A4%A', token: 'admin', status: 400, field: null });
  });

  describe('admin: GET /deliveries', () => {
    const P = '/admin/v1/deliveries';
    const bad = (query: string, field: string) => run({ name: `?${query}`, method: 'GET', path: `${P}?${query}`, token: 'admin', status: 400, field });
    bad('limit=abc', 'limit');
    bad('limit=0', 'limit');
    bad('limit=501', 'limit');
    bad('limit=-1', 'limit');
    bad('limit=1.5', 'limit');
    bad('limit=1e2', 'limit');
    bad('limit=5&limit=6', 'limit');
    bad('limit=99999999999999999999', 'limit');
    bad('status=bogus', 'status');
    bad('status=PENDING', 'status');
    bad('status=pending&status=failed', 'status');
    bad('tenant_id=a&tenant_id=b', 'tenant_id');
    bad('subscription_id=a&subscription_id=b', 'subscription_id');
    bad('event_id=a&event_id=b', 'event_id');
    bad('cursor=a&cursor=b', 'cursor');
  });

  describe('admin: GET /deliveries/:id and POST /deliveries/:id/retry', () => {
    run({ name: 'unknown uuid', method: 'GET', path: `/admin/v1/deliveries/${ABSENT}`, token: 'admin', status: 404 });
    run({ name: 'not a uuid', method: 'GET', path: '/admin/v1/deliveries/nope', token: 'admin', status: 404 });
    run({ name: 'unknown uuid', method: 'POST', path: `/admin/v1/deliveries/${ABSENT}/retry`, token: 'admin', status: 404 });
    run({ name: 'not a uuid', method: 'POST', path: '/admin/v1/deliveries/nope/retry', token: 'admin', status: 404 });
    run({ name: 'invalid JSON body', method: 'POST', path: `/admin/v1/deliveries/${ABSENT}/retry`, token: 'admin', body: BAD_JSON, status: 400, field: 'body' });
  });

  describe('native: POST /endpoints', () => {
    const P = '/api/v1/endpoints';
    const bad = (name: string, body: Case['body'], field: string | RegExp, status = 400, message?: RegExp) =>
      run({ name, method: 'POST', path: P, token: 'fresh', body, status, field, message });
    for (const c of wholeBodyCases('POST', P, 'fresh')) run(c);
    bad('missing url', endpoint({}, ['url']), 'url', 400, /required/);
    bad('url is a number', endpoint({ url: 42 }), 'url');
    bad('url is an object', endpoint({ url: { href: 'http://x' } }), 'url');
    bad('url is empty', endpoint({ url: '' }), 'url');
    bad('url is not a URL', endpoint({ url: 'not a url' }), 'url');
    bad('url is relative', endpoint({ url: '/hook' }), 'url');
    bad('url is ftp', endpoint({ url: 'ftp://example.com/x' }), 'url');
    bad('url is javascript:', endpoint({ url: 'javascript:alert(1)' }), 'url');
    bad('url is file:', endpoint({ url: 'file:///etc/passwd' }), 'url');
    bad('url is 2001 characters', (c: Ctx) => endpoint({ url: `${c.receiver.url}/${long(2001 - c.receiver.url.length - 1)}` })(c), 'url');
    bad('url points at a private network', endpoint({ url: 'http://10.0.0.1/hook' }), 'url', 422);
    bad('url points at cloud metadata', endpoint({ url: 'http://169.254.169.254/latest/meta-data/' }), 'url', 422);
    bad('url points at IPv6 loopback', endpoint({ url: 'http://[::1]:8080/' }), 'url', 422);
    bad('url points at IPv6 link-local', endpoint({ url: 'http://[fe80::1]/' }), 'url', 422);
    bad('url points at 192.168/16 in hex', endpoint({ url: 'http://0xc0a80101/' }), 'url', 422);
    bad('url carries credentials', (c: Ctx) => endpoint({ url: c.receiver.url.replace('http://', 'http://user:pw@') })(c), 'url', 422);
    bad('filters is a string', endpoint({ filters: 'Employee.Add' }), 'filters');
    bad('filters[0] is a number', endpoint({ filters: [5] }), 'filters[0]');
    bad('filters[0] has no dot', endpoint({ filters: ['Employee'] }), 'filters[0]');
    bad('filters[1] has a space', endpoint({ filters: ['Employee.Add', 'bad filter'] }), 'filters[1]');
    bad('filters[1] is empty', endpoint({ filters: ['Employee.Add', ''] }), 'filters[1]');
    bad('filters[0] has three parts', endpoint({ filters: ['Employee.Add.Extra'] }), 'filters[0]');
    // Past HERALD_MAX_FILTERS_PER_SUBSCRIPTION (200 by default): a limit, so 422 (test/limits.test.ts has the rest).
    bad('filters has 201 items', endpoint({ filters: Array.from({ length: 201 }, () => 'Employee.Add') }), 'filters', 422, /HERALD_MAX_FILTERS_PER_SUBSCRIPTION/);
    bad('a filter matches nothing in the catalog', endpoint({ filters: ['Employee.Add', 'Nope.Nothing'] }), /^filters(\[1\])?$/, 422, /Nope\.Nothing/);
    bad('description is 1001 characters', endpoint({ description: long(1001) }), 'description');
    bad('description is a number', endpoint({ description: 5 }), 'description');
    bad('paused is a string', endpoint({ paused: 'true' }), 'paused');
    bad('paused is 1', endpoint({ paused: 1 }), 'paused');
    bad('a caller-chosen secret', endpoint({ secret: 'whsec_AAAA' }), 'secret');
    bad('a caller-chosen status', endpoint({ status: 'active' }), 'status');
    bad('a caller-chosen tenant', (c: Ctx) => endpoint({ tenant_id: c.pub.id })(c), 'tenant_id');
  });

  describe('native: GET /endpoints/:id', () => {
    run({ name: 'unknown uuid', method: 'GET', path: `/api/v1/endpoints/${ABSENT}`, token: 'pub', status: 404 });
    run({ name: 'not a uuid', method: 'GET', path: '/api/v1/endpoints/nope', token: 'pub', status: 404 });
    run({ name: "another tenant's endpoint", method: 'GET', path: '/api/v1/endpoints/{ep}', token: 'fresh', status: 404 });
    run({ name: 'a 500-character id', method: 'GET', path: `/api/v1/endpoints/${long(500)}`, token: 'pub', status: 414, field: null });
    run({ name: 'a bad percent-encoding in the id', method: 'GET', path: '/api/v1/endpoints/%C0%AF%', token: 'pub', status: 400, field: null });
  });

  describe('native: PATCH /endpoints/:id', () => {
    const P = '/api/v1/endpoints/{ep}';
    const bad = (name: string, body: Case['body'], field: string | RegExp, status = 400) => run({ name, method: 'PATCH', path: P, token: 'pub', body, status, field });
    for (const c of wholeBodyCases('PATCH', P, 'pub')) run(c);
    bad('paused is the string "false"', { paused: 'false' }, 'paused');
    bad('paused is 0', { paused: 0 }, 'paused');
    bad('url is empty', { url: '' }, 'url');
    bad('url is gopher', { url: 'gopher://example.com/' }, 'url');
    bad('url points at a private network', { url: 'http://10.0.0.1/' }, 'url', 422);
    bad('url points at IPv4-mapped IPv6 private', { url: 'http://[::ffff:10.0.0.1]/' }, 'url', 422);
    bad('url is 2001 characters', { url: 'https://example.com/' + long(1981) }, 'url');
    bad('filters[0] is empty', { filters: [''] }, 'filters[0]');
    bad('filters[2] is an object', { filters: ['*.*', 'Employee.Add', { e: 1 }] }, 'filters[2]');
    bad('a filter matches nothing in the catalog', { filters: ['*.*', 'Nope.*'] }, /^filters(\[1\])?$/, 422);
    bad('description is 1001 characters', { description: long(1001) }, 'description');
    bad('an unknown extra field', { id: ABSENT }, 'id');
    bad('status is not a settable field', { status: 'active' }, 'status');
    bad('one good field and one bad', { description: 'changed', paused: 'yes' }, 'paused');
    run({ name: 'unknown uuid', method: 'PATCH', path: `/api/v1/endpoints/${ABSENT}`, token: 'pub', body: { description: 'x' }, status: 404 });
    run({ name: "another tenant's endpoint", method: 'PATCH', path: P, token: 'fresh', body: { description: 'hijacked', paused: true }, status: 404 });
  });

  describe('native: PUT /endpoints/:id', () => {
    const P = '/api/v1/endpoints/{ep}';
    const bad = (name: string, body: Case['body'], field: string, status = 400) => run({ name, method: 'PUT', path: P, token: 'pub', body, status, field });
    for (const c of wholeBodyCases('PUT', P, 'pub')) run(c);
    bad('empty object (url is required)', {}, 'url');
    bad('missing url', { filters: [], description: 'changed' }, 'url');
    bad('url is null', { url: null, description: 'changed' }, 'url');
    bad('paused is "no"', endpoint({ paused: 'no', description: 'changed' }), 'paused');
    bad('filters is an object', endpoint({ filters: { a: 'Employee.Add' }, description: 'changed' }), 'filters');
    bad('url points at a private network', { url: 'http://192.168.1.1/', description: 'changed' }, 'url', 422);
    bad('an unknown extra field', endpoint({ headers: { 'x-a': '1' }, description: 'changed' }), 'headers');
    run({ name: 'unknown uuid with a good body', method: 'PUT', path: `/api/v1/endpoints/${ABSENT}`, token: 'pub', body: endpoint(), status: 404 });
    run({ name: "another tenant's endpoint with a good body", method: 'PUT', path: P, token: 'fresh', body: endpoint({ description: 'hijacked' }), status: 404 });
  });

  describe('native: DELETE /endpoints/:id and POST /endpoints/:id/rotate-secret', () => {
    run({ name: 'unknown uuid', method: 'DELETE', path: `/api/v1/endpoints/${ABSENT}`, token: 'pub', status: 404 });
    run({ name: 'not a uuid', method: 'DELETE', path: '/api/v1/endpoints/nope', token: 'pub', status: 404 });
    run({ name: "another tenant's endpoint", method: 'DELETE', path: '/api/v1/endpoints/{ep}', token: 'fresh', status: 404 });
    run({ name: 'unknown uuid', method: 'POST', path: `/api/v1/endpoints/${ABSENT}/rotate-secret`, token: 'pub', status: 404 });
    run({ name: "another tenant's endpoint", method: 'POST', path: '/api/v1/endpoints/{ep}/rotate-secret', token: 'fresh', status: 404 });
    run({ name: 'invalid JSON body', method: 'POST', path: '/api/v1/endpoints/{ep}/rotate-secret', token: 'pub', body: BAD_JSON, status: 400, field: 'body' });
  });

  describe('native: GET /endpoints/:id/deliveries[/:did] and /attempts', () => {
    const D = '/api/v1/endpoints/{ep}/deliveries';
    const A = '/api/v1/endpoints/{ep}/attempts';
    const bad = (path: string, field: string) => run({ name: 'bad query', method: 'GET', path, token: 'pub', status: 400, field });
    bad(`${D}?limit=abc`, 'limit');
    bad(`${D}?limit=0`, 'limit');
    bad(`${D}?limit=501`, 'limit');
    bad(`${D}?limit=-3`, 'limit');
    bad(`${D}?limit=1&limit=2`, 'limit');
    bad(`${D}?cursor=a&cursor=b`, 'cursor');
    bad(`${A}?limit=ten`, 'limit');
    bad(`${A}?limit=0`, 'limit');
    bad(`${A}?cursor=abc`, 'cursor');
    bad(`${A}?cursor=-1`, 'cursor');
    bad(`${A}?cursor=1.5`, 'cursor');
    run({ name: 'unknown endpoint', method: 'GET', path: `/api/v1/endpoints/${ABSENT}/deliveries`, token: 'pub', status: 404 });
    run({ name: "another tenant's endpoint", method: 'GET', path: D, token: 'fresh', status: 404 });
    run({ name: 'unknown delivery', method: 'GET', path: `${D}/${ABSENT}`, token: 'pub', status: 404 });
    run({ name: 'unknown delivery of an unknown endpoint', method: 'GET', path: `/api/v1/endpoints/${ABSENT}/deliveries/${ABSENT}`, token: 'pub', status: 404 });
    run({ name: 'unknown endpoint', method: 'GET', path: `/api/v1/endpoints/${ABSENT}/attempts`, token: 'pub', status: 404 });
    run({ name: "another tenant's endpoint", method: 'GET', path: A, token: 'fresh', status: 404 });
  });

  describe('nothing half-written exists after the bad requests', () => {
    test('no tenant was created by a rejected POST /admin/v1/tenants', async () => {
      const r = await ctx.h.admin('GET', '/admin/v1/tenants');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.data.map((t: { name: string }) => t.name).sort(), ['Fresh', 'Publisher']);
    });

    test('both tenants still exist (no rejected DELETE went through)', async () => {
      for (const id of [ctx.pub.id, ctx.fresh.id]) assert.equal((await ctx.h.admin('GET', `/admin/v1/tenants/${id}`)).status, 200);
    });

    test('the event catalog is exactly the default one', async () => {
      const r = await ctx.h.admin('GET', '/admin/v1/event-types');
      assert.equal(r.status, 200);
      const got = r.body.data.map((t: { type: string }) => t.type).sort();
      const want = DEFAULT_CATALOG.map((t) => `${t.entity}.${t.event}`).sort();
      assert.deepEqual(got, want);
    });

    test('no endpoint was created by a rejected POST /api/v1/endpoints', async () => {
      const r = await ctx.h.call('GET', '/api/v1/endpoints', ctx.fresh.token);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.data, []);
    });

    test("pub's one endpoint is unchanged by the rejected PATCH and PUT, and still there", async () => {
      const list = await ctx.h.call('GET', '/api/v1/endpoints', ctx.pub.token);
      assert.equal(list.status, 200);
      assert.equal(list.body.data.length, 1);
      const r = await ctx.h.call('GET', `/api/v1/endpoints/${ctx.ep.id}`, ctx.pub.token);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, ctx.ep);
    });

    test('no delivery exists for the publishing tenant, through either API', async () => {
      const a = await ctx.h.admin('GET', `/admin/v1/deliveries?tenant_id=${ctx.pub.id}`);
      assert.equal(a.status, 200);
      assert.deepEqual(a.body.data, []);
      const all = await ctx.h.admin('GET', '/admin/v1/deliveries');
      assert.deepEqual(all.body.data, []);
      const n = await ctx.h.call('GET', `/api/v1/endpoints/${ctx.ep.id}/deliveries`, ctx.pub.token);
      assert.equal(n.status, 200);
      assert.deepEqual(n.body.data, []);
      const at = await ctx.h.call('GET', `/api/v1/endpoints/${ctx.ep.id}/attempts`, ctx.pub.token);
      assert.equal(at.status, 200);
      assert.deepEqual(at.body.data, []);
    });

    test('the receiver got nothing (several dispatcher polls later)', async () => {
      await sleep(800); // the test Herald polls every 200 ms
      assert.equal(ctx.receiver.received.length, 0);
    });

    test('never a 5xx, across every request this file sent', () => {
      assert.ok(statuses.length > 200, `expected many requests, got ${statuses.length}`);
      const bad = statuses.filter((s) => s.status >= 500 || s.status < 400);
      assert.deepEqual(bad, []);
    });
  });

  describe('the checks above could have seen a publish', () => {
    test('a good publish to the same tenant is delivered, and the rejected batch left no idempotency key behind', async () => {
      const r = await ctx.h.call('POST', '/admin/v1/events', ADMIN, evNow(ctx, { idempotency_key: 'batch-k1' }));
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.duplicate, false, 'the key of an event in a rejected batch must not have been stored');
      assert.equal(r.body.deliveries, 1);
      await ctx.receiver.waitFor(1);
      assert.equal(ctx.receiver.received.length, 1);
      await eventually(async () => (await ctx.h.admin('GET', `/admin/v1/deliveries?tenant_id=${ctx.pub.id}`)).body.data.length === 1, 5000, 'one delivery listed');
    });
  });
});
