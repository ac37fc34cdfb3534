// Retention on both engines: old finished records pruned in small batches, whatever is not
// finished kept with its event, recent records kept, the Gusto-style events API's 30 days
// kept whatever the setting, one pruner at a time on PostgreSQL, and delivery going on
// while a pass runs. Old rows are written straight into the store with ids of their time,
// as Herald would have made them then.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { uuidv7At as idAt } from '../src/domain/ids.ts';
import { loadConfig } from '../src/config.ts';
import { DAY_MS } from '../src/domain/retention.ts';
import { Pruner } from '../src/dispatch/pruner.ts';
import { makeLogger } from '../src/herald.ts';
import { insertMany, type Db, type Param } from '../src/store/db.ts';
import { PRUNE_LOCK_KEY } from '../src/store/queries/retention.ts';
import { engines } from './helpers/pg.ts';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

const HOUR_MS = 3_600_000;

const log = makeLogger('silent');

interface Old {
  /** When the event and its delivery were made. */
  at: number;
  /** The delivery's state; none: an event with no delivery. */
  status?: 'succeeded' | 'failed' | 'cancelled' | 'pending' | 'held';
  /** Its last change (default: `at`). */
  updatedAt?: number;
  attempts?: number;
  /** A live lease on the delivery (in flight), ending at this time. */
  leaseUntil?: number;
}

/** Writes events (each with at most one delivery and its attempts) as Herald would have at their times. */
async function writeOld(db: Db, tenantId: string, subscriptionId: string, rows: Old[]): Promise<{ eventId: string; deliveryId: string | null }[]> {
  const events: Param[][] = [];
  const deliveries: Param[][] = [];
  const attempts: Param[][] = [];
  const out: { eventId: string; deliveryId: string | null }[] = [];
  for (const r of rows) {
    const eventId = idAt(r.at);
    events.push([eventId, tenantId, 'Employee', 'created', 'e1', null, 'Company', 'c1', '{}', r.at, r.at, null]);
    if (!r.status) { out.push({ eventId, deliveryId: null }); continue; }
    const deliveryId = idAt(r.at);
    const n = r.attempts ?? (r.status === 'succeeded' || r.status === 'failed' ? 1 : 0);
    const next = r.leaseUntil ?? (r.status === 'pending' ? r.at + 1000 * DAY_MS : null);
    deliveries.push([deliveryId, tenantId, eventId, subscriptionId, r.status, n, next, r.leaseUntil ? 'lease' : null, r.updatedAt ?? r.at, r.at]);
    for (let i = 1; i <= n; i++) attempts.push([deliveryId, subscriptionId, i, r.at, 5, i === n && r.status === 'succeeded' ? 200 : 500, 'worker']);
    out.push({ eventId, deliveryId });
  }
  await db.tx(async (t) => {
    await insertMany(t, 'events', ['id', 'tenant_id', 'entity', 'event', 'entity_id', 'entity_uri', 'parent_type', 'parent_id', 'data', 'occurred_at', 'created_at', 'idempotency_key'], events);
    await insertMany(t, 'deliveries', ['id', 'tenant_id', 'event_id', 'subscription_id', 'status', 'attempts', 'next_attempt_at', 'lease_token', 'updated_at', 'created_at'], deliveries);
    await insertMany(t, 'attempts', ['delivery_id', 'subscription_id', 'attempt_no', 'started_at', 'duration_ms', 'status_code', 'worker'], attempts);
  });
  return out;
}

const count = async (db: Db, table: string) => Number((await db.all<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`))[0]!.n);
const exists = async (db: Db, table: string, id: string | null) => id !== null && (await db.all(`SELECT 1 FROM ${table} WHERE id = $1`, [id])).length > 0;

test('settings: 30 days by default, fractions allowed, 0 turns pruning off, a negative or malformed value names its setting', () => {
  const base = { HERALD_ADMIN_TOKEN: 'x', HERALD_SECRET_KEY: '11'.repeat(32) };
  const c = loadConfig(base);
  assert.deepEqual([c.retentionMs, c.retentionIntervalMs, c.retentionBatch, c.retentionPauseMs], [30 * DAY_MS, 3_600_000, 1000, 100]);
  assert.equal(loadConfig({ ...base, HERALD_RETENTION_DAYS: '0.5' }).retentionMs, DAY_MS / 2);
  assert.equal(loadConfig({ ...base, HERALD_RETENTION_DAYS: '0' }).retentionMs, 0);
  assert.throws(() => loadConfig({ ...base, HERALD_RETENTION_DAYS: '-1' }), /HERALD_RETENTION_DAYS/);
  assert.throws(() => loadConfig({ ...base, HERALD_RETENTION_BATCH: '0' }), /HERALD_RETENTION_BATCH/);
  assert.throws(() => loadConfig({ ...base, HERALD_RETENTION_INTERVAL_SECONDS: 'soon' }), /HERALD_RETENTION_INTERVAL_SECONDS/);
});

for (const engine of engines()) {
  describe(`retention on ${engine}`, () => {
    let h: TestHerald;
    let db: Db;
    const receivers: Receiver[] = [];
    // Herald's own pruner is off here, so that each test runs its passes when it means to.
    before(async () => { h = await startHerald(engine, { HERALD_RETENTION_DAYS: '0' }); db = h.herald.store.db; });
    after(async () => { await h.stop(); await Promise.all(receivers.map((r) => r.stop())); });

    async function endpoint(paused = false) {
      const rx = await new Receiver().start();
      receivers.push(rx);
      const t = await h.tenant();
      const e = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url + '/hook', paused });
      assert.equal(e.status, 201, JSON.stringify(e.body));
      return { tenant: t, subscriptionId: e.body.id as string, rx };
    }

    const pruner = (o: Partial<ConstructorParameters<typeof Pruner>[0]> = {}) =>
      new Pruner({ db, log, retentionMs: 30 * DAY_MS, intervalMs: 3_600_000, batch: 1000, pauseMs: 0, ...o });

    test('old finished deliveries go in batches with their attempts and events; unfinished ones and recent ones stay with theirs', async () => {
      const { tenant, subscriptionId } = await endpoint();
      const now = Date.now();
      const old = now - 40 * DAY_MS;
      const gone = await writeOld(db, tenant.id, subscriptionId, [
        ...Array.from({ length: 20 }, (_, i): Old => ({ at: old + i, status: 'succeeded', attempts: 1 + (i % 3) })),
        { at: old + 30, status: 'failed', attempts: 4 },
        { at: old + 31, status: 'cancelled' },
        { at: old + 32 }, // an event no subscription matched
        // Cancelled while in flight, and that attempt's lease ran out long ago (its worker died).
        { at: old + 33, status: 'cancelled', leaseUntil: old + 60_000 },
      ]);
      const kept = await writeOld(db, tenant.id, subscriptionId, [
        { at: old + 40, status: 'pending', attempts: 3 }, // still being retried
        { at: old + 41, status: 'held', attempts: 1 }, // its subscription is paused
        { at: old + 42, status: 'cancelled', leaseUntil: now + HOUR_MS }, // cancelled while in flight: not finished yet
        { at: old + 43, status: 'succeeded', updatedAt: now - 10 * DAY_MS }, // made long ago, finished lately
        { at: now - 29 * DAY_MS, status: 'failed', attempts: 2 },
        { at: now - DAY_MS, status: 'succeeded' },
        { at: now - 29 * DAY_MS }, // no deliveries, but within the events window
      ]);
      const attemptsBefore = await count(db, 'attempts');
      const goneAttempts = Array.from({ length: 20 }, (_, i) => 1 + (i % 3)).reduce((x, y) => x + y) + 4;
      // 7 rows a batch: the 27 old deliveries take four batches, the 28 old events five.
      const r = await pruner({ batch: 7 }).runPass();
      assert.equal(r.deliveries, 23);
      assert.equal(r.attempts, goneAttempts);
      assert.equal(r.events, 24);
      assert.ok(r.batches >= 5 + 4, `batches: ${r.batches}`);
      assert.equal(r.skipped, false);
      assert.equal(await count(db, 'attempts'), attemptsBefore - goneAttempts);
      for (const g of gone) {
        assert.equal(await exists(db, 'events', g.eventId), false, 'old event pruned');
        assert.equal(await exists(db, 'deliveries', g.deliveryId), false, 'old delivery pruned');
      }
      for (const k of kept) {
        assert.equal(await exists(db, 'events', k.eventId), true, 'event kept');
        if (k.deliveryId) assert.equal(await exists(db, 'deliveries', k.deliveryId), true, 'delivery kept');
      }
      const pendingAttempts = await db.all('SELECT attempt_no FROM attempts WHERE delivery_id = $1', [kept[0]!.deliveryId]);
      assert.equal(pendingAttempts.length, 3, 'a kept delivery keeps its attempts');
      // A second pass finds nothing more to do.
      const again = await pruner({ batch: 7 }).runPass();
      assert.deepEqual([again.deliveries, again.events, again.attempts], [0, 0, 0]);
    });

    test('finished recovery jobs older than the setting go; running and recent ones stay', async () => {
      const { tenant } = await endpoint();
      const now = Date.now();
      const old = now - 40 * DAY_MS;
      const job = (id: string, state: string, finishedAt: number | null) => db.run(
        `INSERT INTO recoveries (id, tenant_id, since, until, state, total, created_at, updated_at, finished_at)
         VALUES ($1, $2, 0, 1, $3, 0, $4, $4, $5)`, [id, tenant.id, state, old, finishedAt]);
      await job('00000000-0000-7000-8000-00000000a001', 'done', old);
      await job('00000000-0000-7000-8000-00000000a002', 'cancelled', old + 1);
      await job('00000000-0000-7000-8000-00000000a003', 'running', null);
      await job('00000000-0000-7000-8000-00000000a004', 'done', now - DAY_MS);
      const r = await pruner({ batch: 1 }).runPass();
      assert.equal(r.recoveries, 2);
      const left = (await db.all<{ id: string }>('SELECT id FROM recoveries WHERE tenant_id = $1 ORDER BY id', [tenant.id])).map((x) => x.id.slice(-4));
      assert.deepEqual(left, ['a003', 'a004']);
    });

    test('a failed delivery sent again is not finished any more and stays; the admin API answers 404 for what was pruned', async () => {
      const { tenant, subscriptionId } = await endpoint();
      const old = Date.now() - 40 * DAY_MS;
      const [a, b] = await writeOld(db, tenant.id, subscriptionId, [{ at: old, status: 'failed' }, { at: old + 1, status: 'failed' }]);
      const retry = await h.admin('POST', `/admin/v1/deliveries/${a!.deliveryId}/retry`);
      assert.equal(retry.status, 202, JSON.stringify(retry.body));
      await pruner().runPass();
      assert.equal((await h.admin('GET', `/admin/v1/deliveries/${b!.deliveryId}`)).status, 404);
      assert.equal((await h.admin('GET', `/admin/v1/events/${b!.eventId}`)).status, 404);
      assert.equal((await h.admin('GET', `/admin/v1/deliveries/${a!.deliveryId}`)).status, 200);
      assert.equal((await h.admin('GET', `/admin/v1/events/${a!.eventId}`)).status, 200);
    });

    test('with retention shorter than 30 days, the Gusto-style events API still lists its 30 days of events', async () => {
      const { tenant, subscriptionId } = await endpoint();
      const now = Date.now();
      const [e29, e31] = await writeOld(db, tenant.id, subscriptionId, [{ at: now - 29 * DAY_MS, status: 'succeeded' }, { at: now - 31 * DAY_MS, status: 'succeeded' }]);
      const fresh = await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'created', entity_id: 'e2', parent_type: 'Company', parent_id: 'c1' });
      // Deliveries are kept one hour only; events all the same for 30 days.
      const r = await pruner({ retentionMs: HOUR_MS }).runPass();
      assert.ok(r.deliveries >= 2, `deliveries: ${r.deliveries}`);
      assert.equal(await exists(db, 'deliveries', e29!.deliveryId), false, 'the 29-day-old delivery goes');
      assert.equal(await exists(db, 'events', e29!.eventId), true, 'its event stays');
      const res = await h.call('GET', '/v1/events?limit=100', null, undefined, { authorization: `Token ${tenant.credentials.api_token}` });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const uuids = (res.body as { uuid: string }[]).map((e) => e.uuid);
      assert.deepEqual(uuids, [e29!.eventId, fresh.id]);
      assert.equal(await exists(db, 'events', e31!.eventId), false, 'the 31-day-old event goes');
    });

    if (engine === 'postgres') {
      test('PostgreSQL: while another process prunes, a pruner steps aside at once', async () => {
        const { tenant, subscriptionId } = await endpoint();
        const [a] = await writeOld(db, tenant.id, subscriptionId, [{ at: Date.now() - 40 * DAY_MS, status: 'succeeded' }]);
        let release!: () => void;
        let locked!: () => void;
        const isLocked = new Promise<void>((r) => { locked = r; });
        // Another process's pruning batch, held open.
        const other = db.tx(async (t) => {
          await t.all(`SELECT pg_advisory_xact_lock(${PRUNE_LOCK_KEY})`);
          locked();
          await new Promise<void>((r) => { release = r; });
        });
        await isLocked;
        const t0 = Date.now();
        const r = await pruner().runPass();
        assert.equal(r.skipped, true);
        assert.equal(r.deliveries, 0);
        assert.ok(Date.now() - t0 < 2000, 'it did not wait for the lock');
        assert.equal(await exists(db, 'deliveries', a!.deliveryId), true);
        release();
        await other;
        const r2 = await pruner().runPass();
        assert.equal(r2.skipped, false);
        assert.equal(await exists(db, 'deliveries', a!.deliveryId), false);
      });
    }

    test('delivery goes on while a pass prunes thousands of records', async () => {
      const { tenant, subscriptionId, rx } = await endpoint();
      const old = Date.now() - 40 * DAY_MS;
      const N = 6000;
      await writeOld(db, tenant.id, subscriptionId, Array.from({ length: N }, (_, i): Old => ({ at: old + i, status: 'succeeded' })));
      let passDone = 0;
      const pass = pruner({ batch: 200, pauseMs: 2 }).runPass().then((r) => { passDone = Date.now(); return r; });
      const published: string[] = [];
      for (let i = 0; i < 20; i++) {
        published.push((await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'created', entity_id: `live-${i}`, parent_type: 'Company', parent_id: 'c1' })).id);
      }
      await rx.waitFor(20, 10_000);
      const firstDelivered = Math.min(...rx.received.map((x) => x.at));
      const r = await pass;
      assert.ok(r.deliveries >= N, `pruned ${r.deliveries}`);
      assert.ok(r.batches >= N / 200, `batches: ${r.batches}`);
      assert.ok(firstDelivered < passDone, 'deliveries arrived while the pass was still pruning');
      const ids = new Set(rx.received.map((x) => JSON.parse(x.body).id as string));
      for (const id of published) assert.ok(ids.has(id), `event ${id} delivered`);
    });
  });

  describe(`Herald's own pruner on ${engine}`, () => {
    let h: TestHerald;
    let rx: Receiver;
    // Retention of 0.00002 days is 1.7 s; a pass every 0.2 s.
    before(async () => {
      rx = await new Receiver().start();
      h = await startHerald(engine, { HERALD_RETENTION_DAYS: '0.00002', HERALD_RETENTION_INTERVAL_SECONDS: '0.2', HERALD_RETENTION_PAUSE_MS: '0' });
    });
    after(async () => { await h.stop(); await rx.stop(); });

    test('prunes a delivered delivery once it is older than the setting, keeps a held one and both events', async () => {
      const t = await h.tenant();
      const live = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url + '/hook', filters: ['Employee.Add'] });
      const paused = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url + '/held', paused: true, filters: ['Employee.Update'] });
      assert.equal(live.status, 201);
      assert.equal(paused.status, 201);
      const sent = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      const held = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: '1' });
      await rx.waitFor(1);
      const list = async (sub: string) => (await h.call('GET', `/api/v1/endpoints/${sub}/deliveries`, t.credentials.api_token)).body.data as { id: string }[];
      const [d] = await list(live.body.id);
      const [hd] = await list(paused.body.id);
      assert.ok(d && hd);
      await eventually(async () => (await h.admin('GET', `/admin/v1/deliveries/${d.id}`)).status === 404, 10_000, 'the delivered delivery pruned');
      assert.equal((await h.admin('GET', `/admin/v1/deliveries/${hd.id}`)).status, 200, 'the held one stays');
      assert.equal((await h.admin('GET', `/admin/v1/events/${sent.id}`)).status, 200, 'events stay 30 days');
      assert.equal((await h.admin('GET', `/admin/v1/events/${held.id}`)).status, 200);
    });
  });
}
