// Storage that fails safe. A PostgreSQL server of the test's own crashes and restarts under
// Herald, and a SQLite data dir on a small tmpfs fills up: while the store is away a publish
// answers 503 (507 for a full disk) with Retry-After and stores nothing, every other route
// answers the same rather than a 500, /readyz says not ready, the processes stay up without
// spinning, and when the store is back Herald reconnects (LISTEN too) and delivers everything
// it accepted, by itself.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { HeraldProcess } from './helpers/child.ts';
import { ADMIN, testEnv } from './helpers/herald.ts';
import { PrivatePg, privatePgUnavailable } from './helpers/privatePg.ts';
import { eventually, Receiver, sleep } from './helpers/receiver.ts';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const notRoot = process.getuid?.() !== 0 ? 'not root (mounting a tmpfs needs root)' : null;
const pgWhy = privatePgUnavailable();
// In CI these run or fail: a skip there would hide a regression.
const pgSkip = pgWhy && !ci ? `skipped: ${pgWhy}` : false;
const fullSkip = notRoot && !ci ? `skipped: ${notRoot}` : false;
if (pgSkip) console.log(`NOTE: storeOutage PostgreSQL tests ${pgSkip}`);
if (fullSkip) console.log(`NOTE: storeOutage disk-full test ${fullSkip}`);

interface Answer { status: number; body: any; retryAfter: string | null }

async function call(base: string, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  const res = await fetch(base + path, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, body: parsed, retryAfter: res.headers.get('retry-after') };
}

const admin = (base: string, method: string, path: string, body?: unknown) => call(base, method, path, { authorization: `Bearer ${ADMIN}` }, body);

async function setup(base: string, url: string) {
  const t = (await admin(base, 'POST', '/admin/v1/tenants', { name: 'Acme' })).body;
  const ep = await call(base, 'POST', '/api/v1/endpoints', { authorization: `Bearer ${t.credentials.api_token}` }, { url });
  assert.equal(ep.status, 201, JSON.stringify(ep.body));
  return t;
}

/** One publish as the test saw it: when it started, what it answered. */
interface Try { key: string; startedAt: number; status: number; retryAfter: string | null; id: string | null; code: string | null }

/**
 * Publishes single events in `lanes` parallel loops until stopped. Each event has a unique
 * entity_id (its key), so that what the store holds can be matched to what was answered.
 */
function publisher(base: string, tenantId: string, prefix: string, lanes = 3, data: Record<string, unknown> = {}) {
  const tries: Try[] = [];
  let running = true;
  let n = 0;
  const lane = async () => {
    while (running) {
      const key = `${prefix}${n++}`;
      const startedAt = Date.now();
      const r = await admin(base, 'POST', '/admin/v1/events', { tenant_id: tenantId, entity: 'Employee', event: 'Add', entity_id: key, data });
      tries.push({ key, startedAt, status: r.status, retryAfter: r.retryAfter, id: r.status === 202 ? r.body.id : null, code: r.body?.error?.code ?? null });
      // Refused: a client would wait for Retry-After; a short pause keeps the loop bounded.
      if (r.status !== 202) await sleep(50);
    }
  };
  const done = Promise.all(Array.from({ length: lanes }, lane));
  return { tries, stop: async () => { running = false; await done; }, accepted: () => tries.filter((t) => t.status === 202) };
}

/** Fills the file system holding `path`'s directory with `path` until it refuses another byte. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 10_000; i++) writeSync(fd, chunk);
    assert.fail('the tmpfs never filled');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    try { for (let i = 0; i < 1000; i++) writeSync(fd, Buffer.alloc(512, 1)); } catch { /* the last bytes */ }
  } finally {
    closeSync(fd);
  }
}

function mountTmpfs(size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  return dir;
}

function unmount(dir: string): void {
  try { execFileSync('umount', [dir]); } catch { execFileSync('umount', ['-l', dir]); }
  rmSync(dir, { recursive: true, force: true });
}

const delivered = (rx: Receiver) => new Set(rx.received.map((r) => String(r.headers['webhook-id'])));

/** Log lines of a process whose message starts with `msg`. */
const logged = (p: HeraldProcess, msg: string) => p.lines.filter((l) => { try { return String(JSON.parse(l).msg).startsWith(msg); } catch { return false; } }).length;

async function pgEvents(url: string, schema: string): Promise<Map<string, string>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query(`SELECT id, entity_id FROM "${schema}".events WHERE entity = 'Employee'`);
    return new Map(r.rows.map((x: { id: string; entity_id: string }) => [x.entity_id, x.id]));
  } finally {
    await c.end();
  }
}

/** Every operation of the four OpenAPI documents, fetched while the store is up. */
async function operations(base: string): Promise<{ doc: string; method: string; path: string }[]> {
  const out: { doc: string; method: string; path: string }[] = [];
  for (const doc of ['admin', 'native', 'paycor', 'gusto']) {
    const d = await (await fetch(`${base}/openapi/${doc}.json`)).json() as { paths: Record<string, Record<string, any>> };
    for (const [path, ops] of Object.entries(d.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        // A live stream may answer with a stream that never ends; the health routes need no store.
        if (JSON.stringify(op.responses?.['200']?.content ?? {}).includes('text/event-stream') || /^\/(healthz|readyz|metrics|openapi)/.test(path)) continue;
        out.push({ doc, method: method.toUpperCase(), path });
      }
    }
  }
  return out;
}

/**
 * Calls every operation with ids that exist nowhere, the credentials of its document and an
 * empty object for a body; answers each status with the operations that gave it.
 */
async function sweep(base: string, ops: { doc: string; method: string; path: string }[], creds: Record<string, Record<string, string>>): Promise<Map<number, string[]>> {
  const seen = new Map<number, string[]>();
  for (const op of ops) {
    const path = op.path.replace(/\{[^}]+\}/g, '0190f7a4-0000-7000-8000-000000000000');
    const body = ['POST', 'PUT', 'PATCH'].includes(op.method) ? {} : undefined;
    const r = await call(base, op.method, path, creds[op.doc]!, body);
    seen.set(r.status, [...(seen.get(r.status) ?? []), `${op.method} ${op.path}`]);
  }
  return seen;
}

const FAST = { HERALD_LEASE_SECONDS: '3', HERALD_REQUEST_TIMEOUT_MS: '1000', HERALD_RETRY_SCHEDULE: '0.2,0.5,1,1,1,1,1,1,1,1', HERALD_RETRY_JITTER: '0' };

describe('PostgreSQL goes away (a private server of this test)', { skip: pgSkip }, () => {
  let server: PrivatePg;
  before(async () => { server = await PrivatePg.create(); });
  after(() => server?.destroy());

  test('a crash (pg_ctl stop -m immediate) under load: 503 + Retry-After in every dialect, nothing stored for a refusal, LISTEN reconnects, every accepted event delivered', async () => {
    const schema = 'crash';
    const rx = await new Receiver(() => ({ status: 200, delayMs: 5 })).start();
    // An API-only process and a delivering one, whose poll is too slow to hide a LISTEN that never came back.
    const { env, cleanup } = testEnv('sqlite', { ...FAST, DATABASE_URL: server.url, HERALD_DATABASE_SCHEMA: schema });
    const api = await HeraldProcess.start({ ...env, HERALD_DISPATCH: 'off' });
    const worker = await HeraldProcess.start({ ...env, HERALD_POLL_INTERVAL_MS: '20000' });
    try {
      const t = await setup(api.url, rx.url);
      const ops = await operations(api.url);
      const key = { 'ocp-apim-subscription-key': t.credentials.subscription_key };
      const paycorToken = (await call(api.url, 'POST', '/Accounts/v2/Common/Token', key, { grant_type: 'client_credentials', client_id: t.credentials.client_id, client_secret: t.credentials.client_secret })).body.access_token;
      assert.ok(paycorToken);
      const creds = {
        admin: { authorization: `Bearer ${ADMIN}` },
        native: { authorization: `Bearer ${t.credentials.api_token}` },
        gusto: { authorization: `Token ${t.credentials.api_token}` },
        paycor: { ...key, authorization: `Bearer ${paycorToken}` },
      };
      const pub = publisher(api.url, t.id, 'crash-');
      await rx.waitFor(30, 15_000);
      server.stop('immediate');
      const downAt = Date.now();

      // Everything that needs the store says so, in its own dialect's shape.
      const batch = await admin(api.url, 'POST', '/admin/v1/events/batch', { events: [{ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'batch-during-outage' }] });
      assert.equal(batch.status, 503, JSON.stringify(batch.body));
      assert.equal(batch.retryAfter, '5');
      assert.equal(batch.body.error.code, 'store_unavailable');
      const native = await call(worker.url, 'GET', '/api/v1/endpoints', { authorization: `Bearer ${t.credentials.api_token}` });
      assert.equal(native.status, 503);
      assert.match(native.body.error.message, /database cannot be reached/);
      assert.doesNotMatch(JSON.stringify(native.body), /ECONNREFUSED|127\.0\.0\.1|terminated/, 'the driver\'s own words stay in the log');
      const gusto = await call(api.url, 'GET', '/v1/webhook_subscriptions', { authorization: `Token ${t.credentials.api_token}` });
      assert.equal(gusto.status, 503);
      assert.equal(gusto.retryAfter, '5');
      assert.ok(Array.isArray(gusto.body.errors), JSON.stringify(gusto.body));
      const paycor = await call(api.url, 'POST', '/Accounts/v2/Common/Token', { 'ocp-apim-subscription-key': t.credentials.subscription_key },
        { grant_type: 'client_credentials', client_id: t.credentials.client_id, client_secret: t.credentials.client_secret });
      assert.equal(paycor.status, 503, `not a 401 for a key the store could not check: ${JSON.stringify(paycor.body)}`);
      assert.equal(paycor.body.Title, 'Service Unavailable');
      const adminList = await admin(api.url, 'GET', '/admin/v1/tenants');
      assert.equal(adminList.status, 503);
      // Every route of the four APIs: a 503 where it needed the store, a 4xx where it refused first, never another 5xx.
      const answers = await sweep(api.url, ops, creds);
      const other5xx = [...answers].filter(([status]) => status >= 500 && status !== 503);
      assert.deepEqual(other5xx, [], 'no route answers the outage with a 500');
      assert.ok((answers.get(503)?.length ?? 0) >= ops.length / 2, `most routes need the store: ${JSON.stringify([...answers].map(([s, l]) => [s, l.length]))}`);
      for (const p of [api, worker]) {
        assert.equal((await admin(p.url, 'GET', '/readyz')).status, 503, 'not ready while the store is away');
        assert.equal((await admin(p.url, 'GET', '/healthz')).status, 200, 'but alive: nothing to restart');
      }
      // Long enough for the dispatcher to back off a few times, and for LISTEN to fail more than once.
      await sleep(2500);
      server.start();
      const upAt = Date.now();
      await eventually(() => pub.accepted().some((x) => x.startedAt > upAt), 15_000, 'a publish accepted after the restart');
      await sleep(300);
      await pub.stop();

      const statuses = new Set(pub.tries.map((x) => x.status));
      assert.deepEqual([...statuses].filter((s) => s !== 202 && s !== 503), [], 'every publish answered 202 or 503');
      const refused = pub.tries.filter((x) => x.status === 503);
      assert.ok(refused.length > 0, 'some publishes met the outage');
      for (const r of refused) {
        assert.equal(r.retryAfter, '5', 'a 503 says when to try again');
        assert.equal(r.code, 'store_unavailable');
      }
      const accepted = pub.accepted();
      await eventually(() => { const got = delivered(rx); return accepted.every((a) => got.has(a.id!)); }, 30_000, 'every accepted event delivered after the restart');
      const recoverMs = Date.now() - upAt;

      const stored = await pgEvents(server.url, schema);
      for (const a of accepted) assert.equal(stored.get(a.key), a.id, `accepted ${a.key} is stored`);
      // A publish whose COMMIT the crash cut off may have been stored though answered 503 (a retry with
      // its idempotency key would find it); one that started with the server already down cannot be.
      const late = refused.filter((r) => r.startedAt > downAt);
      assert.ok(late.length > 0);
      for (const r of late) assert.equal(stored.has(r.key), false, `refused ${r.key} is not stored`);
      const unanswered = [...stored.keys()].filter((k) => !accepted.some((a) => a.key === k));
      assert.ok(unanswered.length <= 3, `at most the publishes in flight at the crash are stored unanswered (${unanswered.length})`);
      const ids = new Set(stored.values());
      for (const id of delivered(rx)) assert.ok(ids.has(id), `delivered ${id} was stored`);

      // LISTEN came back by itself: with a 20 s poll only a notification delivers this at once.
      await sleep(300);
      const before = rx.received.length;
      const last = await admin(api.url, 'POST', '/admin/v1/events', { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'after' });
      assert.equal(last.status, 202);
      const t0 = Date.now();
      await rx.waitFor(before + 1, 5000);
      assert.ok(Date.now() - t0 < 3000, `woken by NOTIFY, not the poll (${Date.now() - t0} ms)`);

      for (const p of [api, worker]) assert.equal(p.child.exitCode, null, 'Herald stayed up');
      // Backing off, not spinning: 100 ms doubling to 5 s over an outage of about 3 s.
      const claimFailures = logged(worker, 'claiming due deliveries failed');
      assert.ok(claimFailures >= 1 && claimFailures <= 15, `claims failed and backed off (${claimFailures} tries)`);
      assert.ok(logged(worker, 'LISTEN connection lost') >= 1, 'the lost LISTEN was noticed');
      assert.equal((await admin(worker.url, 'GET', '/readyz')).status, 200);
      console.log(`# PostgreSQL crash: ${accepted.length} accepted, ${refused.length} refused with 503, ${rx.received.length - delivered(rx).size} duplicates, all delivered ${recoverMs} ms after the restart; `
        + `${ops.length} routes during the outage: ${[...answers].map(([st, l]) => `${l.length}× ${st}`).join(', ')}`);

      for (const p of [api, worker]) {
        p.kill('SIGTERM');
        assert.equal((await p.exited).code, 0);
      }
    } finally {
      for (const p of [api, worker]) if (p.child.exitCode === null) p.kill('SIGKILL');
      await rx.stop();
      await cleanup();
    }
  });

  test('a restart (pg_ctl restart -m fast) while publishing and delivering: no 500, every accepted event delivered', async () => {
    const schema = 'restart';
    const rx = await new Receiver(() => ({ status: 200, delayMs: 5 })).start();
    const { env, cleanup } = testEnv('sqlite', { ...FAST, DATABASE_URL: server.url, HERALD_DATABASE_SCHEMA: schema });
    const p = await HeraldProcess.start(env);
    try {
      const t = await setup(p.url, rx.url);
      const pub = publisher(p.url, t.id, 'restart-');
      await rx.waitFor(30, 15_000);
      server.restart('fast');
      const upAt = Date.now();
      await eventually(() => pub.accepted().some((x) => x.startedAt > upAt), 15_000, 'a publish accepted after the restart');
      await pub.stop();
      assert.deepEqual([...new Set(pub.tries.map((x) => x.status))].filter((s) => s !== 202 && s !== 503), []);
      for (const r of pub.tries.filter((x) => x.status === 503)) assert.equal(r.retryAfter, '5');
      const accepted = pub.accepted();
      await eventually(() => { const got = delivered(rx); return accepted.every((a) => got.has(a.id!)); }, 30_000, 'every accepted event delivered');
      const stored = await pgEvents(server.url, schema);
      for (const a of accepted) assert.equal(stored.get(a.key), a.id);
      assert.equal(p.child.exitCode, null);
      p.kill('SIGTERM');
      assert.equal((await p.exited).code, 0);
    } finally {
      if (p.child.exitCode === null) p.kill('SIGKILL');
      await rx.stop();
      await cleanup();
    }
  });
});

describe('PostgreSQL out of disk (a tablespace on a tmpfs of this test)', { skip: pgSkip }, () => {
  let server: PrivatePg;
  let dir = '';
  before(async () => {
    server = await PrivatePg.create();
    dir = mountTmpfs('8m');
    mkdirSync(join(dir, 'ts'));
    chownSync(join(dir, 'ts'), Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })));
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      // Herald's tables go to the small tablespace; the catalog and the WAL stay on the real disk,
      // so that the server refuses writes (53100) rather than stopping.
      await c.query(`CREATE TABLESPACE small LOCATION '${join(dir, 'ts')}'`);
      await c.query('CREATE DATABASE herald_full');
      await c.query('ALTER DATABASE herald_full SET default_tablespace = small');
    } finally {
      await c.end();
    }
  });
  after(() => {
    // Removing the server removes its tablespace's link; the tmpfs goes with its files.
    server?.destroy();
    if (dir) unmount(dir);
  });

  test('publishes answer 507, reads still work, /readyz is not ready until a write succeeds, and nothing accepted is lost', async () => {
    const rx = await new Receiver(() => ({ status: 200 })).start();
    const url = server.url.replace(/\/postgres$/, '/herald_full');
    const { env, cleanup } = testEnv('sqlite', { ...FAST, DATABASE_URL: url, HERALD_DATABASE_SCHEMA: 'h' });
    const p = await HeraldProcess.start(env);
    const filler = join(dir, 'filler');
    try {
      const t = await setup(p.url, rx.url);
      const pad = { pad: 'x'.repeat(3000) };
      const accepted: { key: string; id: string }[] = [];
      const publish = async (key: string) => {
        const r = await admin(p.url, 'POST', '/admin/v1/events', { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: key, data: pad });
        if (r.status === 202) accepted.push({ key, id: r.body.id });
        return r;
      };
      for (let i = 0; i < 5; i++) assert.equal((await publish(`before-${i}`)).status, 202);
      await rx.waitFor(5);
      fill(filler);
      // Pages that still have room take a few more rows; the next extension of a table is refused.
      const during: Answer[] = [];
      for (let i = 0; i < 200 && !during.some((r) => r.status === 507); i++) during.push(await publish(`full-${i}`));
      assert.deepEqual([...new Set(during.map((r) => r.status))].filter((s) => s !== 202 && s !== 507), [], 'every publish answered 202 or 507');
      const refused = during.find((r) => r.status === 507);
      assert.ok(refused, 'the full tablespace refused a publish');
      assert.equal(refused.retryAfter, '5');
      assert.equal(refused.body.error.code, 'insufficient_storage');
      assert.match(refused.body.error.message, /out of disk space/);
      assert.equal((await call(p.url, 'GET', '/api/v1/endpoints', { authorization: `Bearer ${t.credentials.api_token}` })).status, 200, 'reads still work');
      const ready = await admin(p.url, 'GET', '/readyz');
      assert.equal(ready.status, 503);
      assert.match(JSON.stringify(ready.body), /writes are refused/);

      rmSync(filler);
      for (let i = 0; i < 3; i++) assert.equal((await publish(`after-${i}`)).status, 202);
      await eventually(() => { const got = delivered(rx); return accepted.every((a) => got.has(a.id)); }, 20_000, 'every accepted event delivered');
      await eventually(async () => (await admin(p.url, 'GET', '/readyz')).status === 200, 10_000, 'ready again');
      const stored = await pgEvents(url, 'h');
      assert.deepEqual(stored, new Map(accepted.map((a) => [a.key, a.id])), 'the store holds exactly what was answered 202');
      assert.equal(p.child.exitCode, null);
      console.log(`# PostgreSQL out of disk: ${accepted.length} accepted, refused after ${during.length - 1} more fitted`);
      p.kill('SIGTERM');
      assert.equal((await p.exited).code, 0);
    } finally {
      if (p.child.exitCode === null) p.kill('SIGKILL');
      rmSync(filler, { force: true });
      await rx.stop();
      await cleanup();
    }
  });
});

describe('SQLite on a disk that fills up (a tmpfs of this test)', { skip: fullSkip }, () => {
  let dir = '';
  before(() => { dir = mountTmpfs('8m'); });
  after(() => { if (dir) unmount(dir); });

  test('publishes answer 507 with Retry-After, reads still work, nothing accepted is lost, and Herald delivers once space returns', async () => {
    const rx = await new Receiver(() => ({ status: 200 })).start();
    const { env, cleanup } = testEnv('sqlite', { ...FAST, HERALD_DATA_DIR: join(dir, 'data') });
    const p = await HeraldProcess.start(env);
    const filler = join(dir, 'filler');
    try {
      const t = await setup(p.url, rx.url);
      const token = { authorization: `Bearer ${t.credentials.api_token}` };
      const pad = { pad: 'x'.repeat(3000) };
      const accepted: { key: string; id: string }[] = [];
      const publish = async (key: string) => {
        const r = await admin(p.url, 'POST', '/admin/v1/events', { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: key, data: pad });
        if (r.status === 202) accepted.push({ key, id: r.body.id });
        return r;
      };
      for (let i = 0; i < 10; i++) assert.equal((await publish(`before-${i}`)).status, 202);
      await rx.waitFor(10);

      // Fill what is left of the file system with a file of our own, beside the database.
      fill(filler);

      const during: Answer[] = [];
      for (let i = 0; i < 30; i++) during.push(await publish(`full-${i}`));
      assert.deepEqual([...new Set(during.map((r) => r.status))].filter((s) => s !== 202 && s !== 507), [], 'every publish answered 202 or 507, never a 500');
      const refused = during.filter((r) => r.status === 507);
      assert.ok(refused.length > 0, 'the full disk refused publishes');
      for (const r of refused) {
        assert.equal(r.retryAfter, '5');
        assert.equal(r.body.error.code, 'insufficient_storage');
        assert.match(r.body.error.message, /disk holding the database is full/);
      }
      const batch = await admin(p.url, 'POST', '/admin/v1/events/batch', { events: [{ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'batch-full', data: pad }] });
      assert.equal(batch.status, 507);
      const create = await call(p.url, 'POST', '/api/v1/endpoints', token, { url: rx.url + '/second' });
      assert.equal(create.status, 507, 'any write answers the same');
      assert.equal((await call(p.url, 'GET', '/api/v1/endpoints', token)).status, 200, 'reads still work');
      const ready = await admin(p.url, 'GET', '/readyz');
      assert.equal(ready.status, 503, 'not ready while writes are refused');
      assert.match(JSON.stringify(ready.body), /writes are refused/);

      rmSync(filler);
      const spaceAt = Date.now();
      for (let i = 0; i < 5; i++) assert.equal((await publish(`after-${i}`)).status, 202, 'accepted again once there is room');
      await eventually(() => { const got = delivered(rx); return accepted.every((a) => got.has(a.id)); }, 20_000, 'every accepted event delivered');
      const recoverMs = Date.now() - spaceAt;
      await eventually(async () => (await admin(p.url, 'GET', '/readyz')).status === 200, 10_000, 'ready again');

      // The store holds exactly what was answered 202: a refused publish left nothing behind.
      const db = new DatabaseSync(join(dir, 'data', 'herald.db'), { readOnly: true });
      let stored: Map<string, string>;
      try {
        stored = new Map((db.prepare("SELECT entity_id, id FROM events WHERE entity = 'Employee'").all() as { entity_id: string; id: string }[]).map((r) => [r.entity_id, r.id]));
      } finally {
        db.close();
      }
      assert.deepEqual(new Map(accepted.map((a) => [a.key, a.id])), stored);
      assert.equal(p.child.exitCode, null, 'Herald stayed up');
      console.log(`# SQLite disk full: ${accepted.length} accepted, ${refused.length} of 30 refused with 507, ${rx.received.length - delivered(rx).size} duplicates, all delivered ${recoverMs} ms after space returned`);
      p.kill('SIGTERM');
      assert.equal((await p.exited).code, 0);
    } finally {
      if (p.child.exitCode === null) p.kill('SIGKILL');
      rmSync(filler, { force: true });
      await rx.stop();
      await cleanup();
    }
  });
});
