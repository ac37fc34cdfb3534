// The transactional outbox: a producer's change and its event commit together (herald/outbox,
// plain SQL into herald_outbox), and Herald drains the table into its engine once per row,
// through rollbacks, refused rows, a claim cut off before its delete, two processes and kill -9.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createOutbox, outboxTableSql, publish, publishMany } from 'herald/outbox';
import { verifyStandard } from 'herald/verify';
import { loadConfig } from '../src/config.ts';
import { makeLogger } from '../src/herald.ts';
import { DEFAULT_CATALOG } from '../src/domain/eventTypes.ts';
import { OutboxDrainer, type DrainResult } from '../src/outbox/drainer.ts';
import { openStore } from '../src/store/open.ts';
import { HeraldProcess } from './helpers/child.ts';
import { ADMIN, startHerald, testEnv, type TestHerald } from './helpers/herald.ts';
import { dropSchema, freshSchema, PG_URL, pgEnabled } from './helpers/pg.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

const SKIP = !pgEnabled && 'PostgreSQL not reachable (set HERALD_TEST_REQUIRE_PG=1 to fail instead)';

describe('outbox settings', () => {
  const base = { HERALD_ADMIN_TOKEN: 'x', HERALD_SECRET_KEY: 'ab'.repeat(32), HERALD_DATA_DIR: join(tmpdir(), 'herald-outbox-settings') };

  test('HERALD_OUTBOX=on on SQLite with no outbox database is refused, saying what to do instead', () => {
    assert.throws(() => loadConfig({ ...base, HERALD_OUTBOX: 'on' }), /HERALD_OUTBOX_DATABASE_URL.*idempotency key/);
  });

  test('outbox settings without HERALD_OUTBOX=on are refused rather than ignored', () => {
    assert.throws(() => loadConfig({ ...base, HERALD_OUTBOX_DATABASE_URL: PG_URL }), /HERALD_OUTBOX=on/);
    assert.throws(() => loadConfig({ ...base, HERALD_OUTBOX: 'on', HERALD_OUTBOX_DATABASE_URL: 'mysql://x' }), /HERALD_OUTBOX_DATABASE_URL must be a postgres/);
  });

  test('defaults: Herald\'s own database and schema, or public in the producer\'s; an outbox database lets a SQLite Herald drain it', () => {
    const own = loadConfig({ ...base, HERALD_OUTBOX: 'on', DATABASE_URL: PG_URL, HERALD_DATABASE_SCHEMA: 'herald' });
    assert.deepEqual(own.outbox, { url: PG_URL, schema: 'herald', batch: 500 });
    const ext = loadConfig({ ...base, HERALD_OUTBOX: 'on', HERALD_OUTBOX_DATABASE_URL: 'postgres://app@db/app', HERALD_OUTBOX_SCHEMA: 'events', HERALD_OUTBOX_BATCH: '50' });
    assert.deepEqual(ext.outbox, { url: 'postgres://app@db/app', schema: 'events', batch: 50 });
    const producers = loadConfig({ ...base, HERALD_OUTBOX: 'on', DATABASE_URL: PG_URL, HERALD_DATABASE_SCHEMA: 'herald', HERALD_OUTBOX_DATABASE_URL: 'postgres://app@db/app' });
    assert.deepEqual(producers.outbox, { url: 'postgres://app@db/app', schema: 'public', batch: 500 }, "the producer's database: its public schema");
    assert.equal(loadConfig(base).outbox, null);
  });

  test('an outbox database that cannot be reached does not keep Herald from starting', async () => {
    const h = await startHerald('sqlite', { HERALD_OUTBOX: 'on', HERALD_OUTBOX_DATABASE_URL: 'postgres://herald@127.0.0.1:1/nowhere' });
    try {
      assert.equal((await h.call('GET', '/healthz', null)).status, 200);
      assert.equal((await h.admin('POST', '/admin/v1/tenants', { name: 'Acme' })).status, 201, 'the API works meanwhile');
    } finally {
      await h.stop();
    }
  });
});

/** A pg client on the test database, closed after the suite. */
async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  return c;
}

/** Herald's events per idempotency key, in Herald's PostgreSQL schema. */
async function eventsByKey(c: pg.Client, schema: string): Promise<Map<string, { n: number; ids: string[] }>> {
  const { rows } = await c.query(`SELECT idempotency_key AS k, COUNT(*)::int AS n, array_agg(id) AS ids FROM "${schema}".events WHERE idempotency_key IS NOT NULL GROUP BY 1`);
  return new Map(rows.map((r) => [r.k as string, { n: r.n as number, ids: r.ids as string[] }]));
}

async function pending(c: pg.Client, schema: string): Promise<number> {
  return (await c.query(`SELECT COUNT(*)::int AS n FROM "${schema}".herald_outbox WHERE failed_at IS NULL`)).rows[0].n;
}

async function endpoint(base: string, apiToken: string, url: string, extra: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
  const res = await fetch(`${base}/api/v1/endpoints`, { method: 'POST', headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ url, ...extra }) });
  assert.equal(res.status, 201);
  return (await res.json()) as { id: string; secret: string };
}

const distinctIds = (rx: Receiver) => new Set(rx.received.map((r) => String(r.headers['webhook-id'])));

describe('the outbox on PostgreSQL', { skip: SKIP }, () => {
  let c: pg.Client;
  before(async () => { if (pgEnabled) c = await client(); });
  after(async () => { await c?.end(); });

  test('the helper refuses an event Herald would refuse before writing, and createOutbox can run again', async () => {
    const schema = freshSchema();
    try {
      await createOutbox(c, { schema });
      await createOutbox(c, { schema });
      await c.query(outboxTableSql({ schema }));
      for (const bad of [
        { entity: 'Employee', event: 'Add', entity_id: '1' },
        { tenant_id: 't', entity: 'Employee.Add', event: 'Add', entity_id: '1' },
        { tenant_id: 't', entity: 'Employee', event: 'Add', entity_id: '1', data: [1] },
        { tenant_id: 't', entity: 'Employee', event: 'Add', entity_id: '1', colour: 'red' },
        { tenant_id: 't', entity: 'Employee', event: 'Add', entity_id: '1', occurred_at: 'yesterday' },
      ]) {
        await assert.rejects(publish(c, bad as never, { schema }), TypeError, JSON.stringify(bad));
      }
      await assert.rejects(publishMany(c, [{ tenant_id: 't', entity: 'Employee', event: 'Add', entity_id: '1' }, {} as never], { schema }), /events\[1\]\.tenant_id is required/);
      assert.equal(await pending(c, schema), 0, 'nothing half-written');
      assert.throws(() => outboxTableSql({ schema: 'Robert"; DROP TABLE x; --' }), TypeError);
    } finally {
      await dropSchema(schema);
    }
  });

  describe('one Herald draining its own database', () => {
    let h: TestHerald;
    let rx: Receiver;
    let tenant: Awaited<ReturnType<TestHerald['tenant']>>;
    let secret: string;
    let schema: string;
    before(async () => {
      if (!pgEnabled) return;
      rx = await new Receiver().start();
      h = await startHerald('postgres', { HERALD_OUTBOX: 'on', HERALD_OUTBOX_BATCH: '2' });
      schema = h.env.HERALD_DATABASE_SCHEMA!;
      tenant = await h.tenant();
      secret = (await endpoint(h.url, tenant.credentials.api_token, rx.url)).secret;
      await c.query(`CREATE TABLE "${schema}".orders (id serial PRIMARY KEY, customer text NOT NULL)`);
    });
    after(async () => {
      await h?.stop();
      await rx?.stop();
    });

    test('a rolled-back transaction publishes nothing; a committed one is delivered, signed', async () => {
      const producer = await client();
      try {
        await producer.query('BEGIN');
        await producer.query(`INSERT INTO "${schema}".orders (customer) VALUES ('rolled back')`);
        const lost = await publish(producer, { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: 'rb', data: { customer: 'rolled back' } }, { schema });
        await producer.query('ROLLBACK');

        await producer.query('BEGIN');
        const order = (await producer.query(`INSERT INTO "${schema}".orders (customer) VALUES ('kept') RETURNING id`)).rows[0].id;
        const kept = await publish(producer, { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: order, data: { customer: 'kept' } }, { schema });
        await producer.query('COMMIT');

        await rx.waitFor(1);
        const got = rx.received[0]!;
        const v = verifyStandard(got.raw, got.headers, secret);
        assert.ok(v.ok, JSON.stringify(v));
        const body = JSON.parse(got.body);
        assert.equal(body.data.customer, 'kept');
        assert.equal(body.type, 'Employee.Add');
        assert.equal(body.data.entity_id, String(order), 'the producer\'s row id, read in its own transaction');
        await eventually(async () => (await pending(c, schema)) === 0, 10_000, 'the outbox drained');
        const keys = await eventsByKey(c, schema);
        assert.equal(keys.get(kept)?.n, 1, 'the committed row is one Herald event, keyed by its outbox id');
        assert.deepEqual(keys.get(kept)?.ids, [v.ok ? v.id : ''], 'the delivery is that event');
        assert.equal(keys.has(lost), false, 'the rolled-back row never reached Herald');
        assert.equal(rx.received.length, 1);
      } finally {
        await producer.end();
      }
    });

    test('a row with its own idempotency key is that key\'s event: one the API already published is not sent again', async () => {
      const before = rx.received.length;
      const api = await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: 'k1', idempotency_key: 'order-77' });
      await rx.waitFor(before + 1);
      await c.query('BEGIN');
      const [again, fresh] = await publishMany(c, [
        { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: 'k1', idempotency_key: 'order-77' },
        { tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: 'k2', idempotency_key: 'order-78' },
      ], { schema });
      await c.query('COMMIT');
      await rx.waitFor(before + 2);
      await eventually(async () => (await pending(c, schema)) === 0, 10_000, 'both rows drained');
      const keys = await eventsByKey(c, schema);
      assert.deepEqual(keys.get('order-77')?.ids, [api.id], 'the API\'s event, not a second one');
      assert.equal(keys.get('order-78')?.n, 1);
      assert.equal(keys.has(again!) || keys.has(fresh!), false, 'the row ids were not used as keys');
      assert.deepEqual(rx.received.slice(before).map((r) => r.headers['webhook-id']), [api.id, keys.get('order-78')!.ids[0]]);
    });

    test('rows Herald refuses are kept with their reason and do not hold back the rest', async () => {
      const before = rx.received.length;
      const outboxRows = async (outcome: string) => {
        const text = (await h.call('GET', '/metrics', null)).body as string;
        return Number(new RegExp(`^herald_outbox_rows_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      };
      const [publishedBefore, refusedBefore] = [await outboxRows('published'), await outboxRows('refused')];
      const deep = JSON.stringify(Array.from({ length: 40 }).reduce((o) => ({ o }), {}));
      const rows: [string, string, string, string][] = [
        [tenant.id, 'Employee', 'Add', '{"n":1}'],
        ['no-such-tenant', 'Employee', 'Add', '{}'],
        [tenant.id, 'Spaceship', 'Launch', '{}'],
        [tenant.id, 'Employee', 'Add', '[1,2]'],
        [tenant.id, 'Employee', 'Add', '{"n":2}'],
        [tenant.id, 'Employee', 'Add', deep],
        [tenant.id, 'Employee', 'Add', '{"n":3}'],
      ];
      const ids: string[] = [];
      // Plain SQL, as a producer without the helper writes it: one transaction.
      await c.query('BEGIN');
      for (const [t, en, ev, d] of rows) {
        ids.push((await c.query(`INSERT INTO "${schema}".herald_outbox (tenant_id, entity, event, entity_id, data) VALUES ($1, $2, $3, 'x', $4::jsonb) RETURNING id`, [t, en, ev, d])).rows[0].id);
      }
      await c.query('COMMIT');
      await eventually(async () => (await pending(c, schema)) === 0, 10_000, 'every row drained or refused');
      await rx.waitFor(before + 3);
      const delivered = rx.received.slice(before).map((r) => JSON.parse(r.body).data.n).sort();
      assert.deepEqual(delivered, [1, 2, 3], 'the good rows around the bad ones were delivered');
      const failed = (await c.query(`SELECT id, error FROM "${schema}".herald_outbox WHERE failed_at IS NOT NULL ORDER BY seq`)).rows;
      assert.deepEqual(failed.map((r) => r.id), [ids[1], ids[2], ids[3], ids[5]]);
      assert.match(failed[0].error, /^tenant_id: tenant no-such-tenant does not exist/);
      assert.match(failed[1].error, /^event: Spaceship\.Launch is not in the event catalog/);
      assert.match(failed[2].error, /^data: /);
      assert.match(failed[3].error, /^data: must nest at most 32 levels/);
      const keys = await eventsByKey(c, schema);
      for (const i of [1, 2, 3, 5]) assert.equal(keys.has(ids[i]!), false, 'a refused row published nothing');
      assert.equal((await h.call('GET', '/healthz', null)).status, 200, 'Herald is still up');
      assert.equal(await outboxRows('refused'), refusedBefore + 4, 'herald_outbox_rows_total counts the refused');
      assert.equal(await outboxRows('published'), publishedBefore + 3, 'and the published');

      // Mended and released, a refused row goes out at the next look.
      await c.query(`UPDATE "${schema}".herald_outbox SET tenant_id = $1, failed_at = NULL, error = NULL WHERE id = $2`, [tenant.id, ids[1]]);
      // Gone from the outbox (the delete commits just after the publish), and one event.
      await eventually(async () => (await c.query(`SELECT 1 FROM "${schema}".herald_outbox WHERE id = $1`, [ids[1]])).rowCount === 0, 10_000, 'the mended row drained');
      assert.equal((await eventsByKey(c, schema)).get(ids[1]!)?.n, 1, 'the mended row published once');
    });
  });

  test('a claim cut off after the publish, before the delete: the rows are published again and stay one event each', async () => {
    const schema = freshSchema();
    const dir = mkdtempSync(join(tmpdir(), 'herald-outbox-'));
    const store = await openStore({ databaseUrl: PG_URL, databaseSchema: schema, dataDir: dir });
    const drains: DrainResult[] = [];
    let drainer: OutboxDrainer | null = null;
    try {
      await store.migrate();
      await store.seedEventTypes(DEFAULT_CATALOG);
      const tenantId = (await store.createTenant('T', `c-${schema}`, { clientSecretHash: 'a', subscriptionKeyHash: `k-${schema}`, apiTokenHash: `t-${schema}` })).id;
      // The fault: right after Herald's store commits a publish, the outbox connection holding
      // the claim is terminated, as a crash of Herald there would leave it.
      let cuts = 2;
      const real = store.publish.bind(store);
      store.publish = async (events) => {
        const r = await real(events);
        if (cuts > 0) {
          cuts--;
          await c.query(`SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = 'relation' AND l.relation = to_regclass($1) AND l.pid <> pg_backend_pid()`, [`"${schema}".herald_outbox`]);
        }
        return r;
      };
      drainer = new OutboxDrainer({ url: PG_URL, schema, batch: 10, pollIntervalMs: 200, store, log: makeLogger('silent'), onDrain: (r) => drains.push(r) });
      await drainer.start();
      await c.query('BEGIN');
      const ids = await publishMany(c, Array.from({ length: 25 }, (_, i) => ({ tenant_id: tenantId, entity: 'Employee', event: 'Update', entity_id: String(i) })), { schema });
      await c.query('COMMIT');
      await eventually(async () => (await pending(c, schema)) === 0, 20_000, 'the outbox drained');
      assert.equal(cuts, 0, 'both cuts happened');
      const keys = await eventsByKey(c, schema);
      for (const id of ids) assert.equal(keys.get(id)?.n, 1, `outbox row ${id} is exactly one event`);
      assert.equal(keys.size, 25);
      // The first batch was published by the drain that was cut, found published by the second
      // (cut too), and by the third, which got to delete it.
      assert.equal(drains.reduce((n, d) => n + d.duplicates, 0), 10, 'the cut batch was found already published');
      assert.equal(drains.reduce((n, d) => n + d.published, 0), 15);
    } finally {
      await drainer?.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      await dropSchema(schema);
    }
  });

  test('a SQLite Herald drains an outbox in the producer\'s PostgreSQL, woken by the commit rather than its poll', async () => {
    const schema = freshSchema();
    const rx = await new Receiver().start();
    // The longest poll there is: the row can only be found this soon through the trigger's NOTIFY.
    const h = await startHerald('sqlite', { HERALD_OUTBOX: 'on', HERALD_OUTBOX_DATABASE_URL: PG_URL, HERALD_OUTBOX_SCHEMA: schema, HERALD_POLL_INTERVAL_MS: '60000' });
    try {
      const t = await h.tenant();
      await endpoint(h.url, t.credentials.api_token, rx.url);
      await c.query('BEGIN');
      const id = await publish(c, { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 7, data: { from: 'postgres' } }, { schema });
      await c.query('COMMIT');
      await rx.waitFor(1);
      assert.equal(JSON.parse(rx.received[0]!.body).data.from, 'postgres');
      const ev = (await h.admin('GET', `/admin/v1/events/${rx.received[0]!.headers['webhook-id']}`)).body;
      assert.equal(ev.idempotency_key, id);
      await eventually(async () => (await pending(c, schema)) === 0, 10_000, 'the row deleted');
    } finally {
      await h.stop();
      await rx.stop();
      await dropSchema(schema);
    }
  });

  test('two Herald processes share the drain: every row one event, each delivered, each entity in order', async () => {
    const rx = await new Receiver().start();
    const { env, cleanup } = testEnv('postgres', { HERALD_OUTBOX: 'on', HERALD_OUTBOX_BATCH: '10' });
    const schema = env.HERALD_DATABASE_SCHEMA!;
    const procs: HeraldProcess[] = [];
    try {
      procs.push(await HeraldProcess.start(env), await HeraldProcess.start(env));
      const t = await (await fetch(`${procs[0]!.url}/admin/v1/tenants`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{"name":"Acme"}' })).json() as any;
      await endpoint(procs[1]!.url, t.credentials.api_token, rx.url, { ordering: 'entity' });
      // Four producers at once, 15 transactions of 5 rows each, each producer changing three
      // entities of its own in turn (so its transactions are the order of their events).
      const ids: string[] = [];
      await Promise.all(Array.from({ length: 4 }, async (_, p) => {
        const producer = await client();
        try {
          for (let k = 0; k < 15; k++) {
            await producer.query('BEGIN');
            ids.push(...await publishMany(producer, Array.from({ length: 5 }, (_, i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: `${p}-${(k * 5 + i) % 3}`, data: { n: k * 5 + i } })), { schema }));
            await producer.query('COMMIT');
          }
        } finally {
          await producer.end();
        }
      }));
      assert.equal(ids.length, 300);
      await eventually(async () => (await pending(c, schema)) === 0, 30_000, 'the outbox drained');
      const keys = await eventsByKey(c, schema);
      for (const id of ids) assert.equal(keys.get(id)?.n, 1, `outbox row ${id} is exactly one event`);
      await eventually(() => distinctIds(rx).size === 300, 30_000, '300 events delivered');
      const eventIds = new Set([...keys.values()].flatMap((k) => k.ids));
      for (const id of distinctIds(rx)) assert.ok(eventIds.has(id));
      // Each entity's events arrived in the order its producer committed them.
      const seen = new Map<string, number[]>();
      for (const r of rx.received) {
        const b = JSON.parse(r.body);
        seen.set(b.data.entity_id, [...(seen.get(b.data.entity_id) ?? []), b.data.n]);
      }
      assert.equal(seen.size, 12);
      for (const [entity, ns] of seen) assert.deepEqual(ns, [...ns].sort((x, y) => x - y), `entity ${entity} in order`);
    } finally {
      for (const p of procs) p.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.exited));
      await rx.stop();
      await cleanup();
    }
  });

  test('kill -9 of Herald mid-drain neither loses nor duplicates an event', async () => {
    const rx = await new Receiver().start();
    const outboxSchema = freshSchema();
    // The outbox apart from Herald's tables, as a producer's own database would hold it.
    const { env, cleanup } = testEnv('postgres', { HERALD_OUTBOX: 'on', HERALD_OUTBOX_SCHEMA: outboxSchema, HERALD_OUTBOX_BATCH: '5' });
    const schema = env.HERALD_DATABASE_SCHEMA!;
    let p: HeraldProcess | null = null;
    try {
      // Not delivering: the kill cuts the drain, not deliveries whose leases would then run out first.
      p = await HeraldProcess.start({ ...env, HERALD_DISPATCH: 'off' });
      const t = await (await fetch(`${p.url}/admin/v1/tenants`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{"name":"Acme"}' })).json() as any;
      await endpoint(p.url, t.credentials.api_token, rx.url);
      await c.query('BEGIN');
      const ids = await publishMany(c, Array.from({ length: 300 }, (_, i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: String(i) })), { schema: outboxSchema });
      await c.query('COMMIT');
      const count = async () => (await c.query(`SELECT COUNT(*)::int AS n FROM "${schema}".events`)).rows[0].n as number;
      await eventually(async () => (await count()) >= 30, 20_000, 'the drain under way');
      p.kill('SIGKILL');
      assert.equal((await p.exited).signal, 'SIGKILL');
      const left = await pending(c, outboxSchema);
      assert.ok(left > 0, `the kill came with rows left to drain (${left})`);
      p = await HeraldProcess.start({ ...env, HERALD_PORT: '0' });
      await eventually(async () => (await pending(c, outboxSchema)) === 0, 30_000, 'the outbox drained after restart');
      const keys = await eventsByKey(c, schema);
      for (const id of ids) assert.equal(keys.get(id)?.n, 1, `outbox row ${id} is exactly one event`);
      assert.equal(await count(), 300, 'no other event');
      await eventually(() => distinctIds(rx).size === 300, 30_000, '300 events delivered');
    } finally {
      p?.kill('SIGKILL');
      await p?.exited;
      await rx.stop();
      await cleanup();
      await dropSchema(outboxSchema);
    }
  });
});
