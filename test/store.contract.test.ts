// One contract for the Store port, run against both engines.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TenantId } from '../src/domain/ids.ts';
import type { ClaimedDelivery, NewEvent } from '../src/domain/model.ts';
import { loadMigrations } from '../src/store/migrate.ts';
import { openStore } from '../src/store/open.ts';
import type { SqlStore } from '../src/store/sqlStore.ts';
import { dropSchema, engines, freshSchema, PG_URL } from './helpers/pg.ts';
import { sleep } from './helpers/receiver.ts';

const attempt = (code: number | null) => ({ startedAt: Date.now(), durationMs: 3, statusCode: code, errorKind: code === null ? 'connection' as const : null, error: null, responseBody: 'x', worker: 'test' });

for (const engine of engines()) {
  describe(`Store contract on ${engine}`, () => {
    let store: SqlStore;
    let dir: string;
    let schema: string;
    let tenantId: TenantId;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'herald-store-'));
      schema = freshSchema();
      store = await openStore({ databaseUrl: engine === 'postgres' ? PG_URL : null, databaseSchema: schema, dataDir: dir });
      assert.deepEqual(await store.migrate(), loadMigrations(engine).map((m) => m.version), 'a fresh store applies every migration');
      assert.deepEqual(await store.migrate(), [], 'a second migrate applies nothing');
      await store.seedEventTypes([{ entity: 'Employee', event: 'Add', description: 'x' }]);
      tenantId = (await store.createTenant('T', `c-${schema}`, { clientSecretHash: 'a', subscriptionKeyHash: `k-${schema}`, apiTokenHash: `t-${schema}` })).id;
    });
    after(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      if (engine === 'postgres') await dropSchema(schema);
    });

    const sub = (over: Partial<Parameters<SqlStore['createSubscription']>[0]> = {}) => store.createSubscription({
      tenantId, dialect: 'native', url: 'http://127.0.0.1:9/', description: '', filters: [], paused: false, enabled: true,
      status: 'active', secrets: [], headers: {}, properties: {}, ...over,
    });
    const ev = (over: Partial<NewEvent> = {}): NewEvent => ({
      tenantId, entity: 'Employee', event: 'Add', entityId: '1', entityUri: null, parentType: null, parentId: null,
      data: {}, occurredAt: Date.now(), idempotencyKey: null, ...over,
    });
    const drain = async () => {
      // Finish everything due so that each test starts from an empty queue.
      for (let c = await store.claimDue(1000, 60_000); c.length; c = await store.claimDue(1000, 60_000)) {
        for (const x of c) await store.complete(x, attempt(200), { kind: 'succeeded' });
      }
    };

    test('a schema newer than this Herald is refused', async () => {
      await store.db.run('INSERT INTO herald_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [999, '999_future.sql', Date.now()]);
      await assert.rejects(store.migrate(), /newer than this Herald/);
      await store.db.run('DELETE FROM herald_migrations WHERE version = $1', [999]);
    });

    test('publish writes the event and one delivery per matching subscription; claim leases them once', async () => {
      await drain();
      const all = await sub();
      const filtered = await sub({ filters: ['Payroll.*'] });
      const disabled = await sub({ enabled: false });
      const [r] = await store.publish([ev()]);
      assert.equal(r!.deliveries, 1);
      const claimed = await store.claimDue(10, 60_000);
      assert.equal(claimed.length, 1);
      assert.equal(claimed[0]!.subscription.id, all.id);
      assert.equal(claimed[0]!.event.id, r!.event.id);
      assert.deepEqual(await store.claimDue(10, 60_000), [], 'a leased delivery is not claimed again');
      assert.equal(await store.complete(claimed[0]!, attempt(200), { kind: 'succeeded' }), true);
      const d = await store.getDelivery(claimed[0]!.delivery.id);
      assert.equal(d!.status, 'succeeded');
      assert.equal(d!.attempts, 1);
      assert.equal((await store.listAttempts(d!.id)).length, 1);
      void filtered; void disabled;
      for (const s of [all, filtered, disabled]) await store.deleteSubscription(tenantId, s.id);
    });

    test('a lease that runs out makes the delivery due again, and the old holder cannot record', async () => {
      await drain();
      const s = await sub();
      await store.publish([ev()]);
      const [first] = await store.claimDue(10, 50);
      assert.ok(first);
      await sleep(80);
      const [second] = await store.claimDue(10, 60_000);
      assert.equal(second?.delivery.id, first.delivery.id);
      assert.equal(await store.complete(first, attempt(200), { kind: 'succeeded' }), false, 'the expired lease is fenced off');
      assert.equal(await store.complete(second!, attempt(500), { kind: 'retry', at: Date.now() + 60_000 }), true);
      const d = await store.getDelivery(first.delivery.id);
      assert.equal(d!.status, 'pending');
      assert.equal(d!.attempts, 1);
      assert.equal(d!.lastStatusCode, 500);
      await store.deleteSubscription(tenantId, s.id);
      assert.equal((await store.getDelivery(first.delivery.id))!.status, 'cancelled');
    });

    test('pausing holds, unpausing makes held deliveries due; a retry while paused is held', async () => {
      await drain();
      const s = await sub({ paused: true });
      await store.publish([ev(), ev()]);
      assert.deepEqual(await store.claimDue(10, 60_000), []);
      assert.equal((await store.listDeliveries({ subscriptionId: s.id, status: 'held', limit: 10 })).length, 2);
      await store.updateSubscription(tenantId, s.id, { paused: false });
      const c = await store.claimDue(10, 60_000);
      assert.equal(c.length, 2);
      await store.updateSubscription(tenantId, s.id, { paused: true });
      await store.complete(c[0]!, attempt(500), { kind: 'retry', at: Date.now() });
      await store.complete(c[1]!, attempt(200), { kind: 'succeeded' });
      assert.equal((await store.getDelivery(c[0]!.delivery.id))!.status, 'held');
      assert.equal((await store.getDelivery(c[1]!.delivery.id))!.status, 'succeeded');
      await store.deleteSubscription(tenantId, s.id);
    });

    test('gone disables the subscription and holds what waits for it', async () => {
      await drain();
      const s = await sub();
      await store.publish([ev(), ev()]);
      const [c1] = await store.claimDue(1, 60_000);
      await store.complete(c1!, attempt(410), { kind: 'gone' });
      const after = await store.getSubscription(tenantId, s.id);
      assert.equal(after!.status, 'disabled');
      assert.equal(after!.paused, true);
      assert.equal((await store.getDelivery(c1!.delivery.id))!.status, 'failed');
      assert.equal((await store.listDeliveries({ subscriptionId: s.id, status: 'held', limit: 10 })).length, 1);
      await store.deleteSubscription(tenantId, s.id);
    });

    test('a delivery cancelled while in flight records its attempt and stays cancelled', async () => {
      await drain();
      const s = await sub();
      await store.publish([ev()]);
      const [c] = await store.claimDue(1, 60_000);
      await store.deleteSubscription(tenantId, s.id);
      assert.equal(await store.complete(c!, attempt(500), { kind: 'retry', at: Date.now() }), true);
      const d = await store.getDelivery(c!.delivery.id);
      assert.equal(d!.status, 'cancelled');
      assert.equal((await store.listAttempts(c!.delivery.id)).length, 1, 'the attempt is on record');
    });

    test('an exhausted delivery with no success since takes the subscription out of service', async () => {
      await drain();
      const s = await sub({ status: 'verified' });
      await store.publish([ev(), ev()]);
      const [c1, c2] = await store.claimDue(2, 60_000);
      await store.complete(c2!, attempt(200), { kind: 'succeeded' });
      await store.complete(c1!, attempt(500), { kind: 'failed', exhaustedStatus: 'unreachable' });
      assert.equal((await store.getSubscription(tenantId, s.id))!.status, 'verified', 'a success since the delivery was created keeps it');
      await sleep(5); // the next delivery is created strictly after that success
      await store.publish([ev()]);
      const [c3] = await store.claimDue(1, 60_000);
      await store.publish([ev()]);
      await store.complete(c3!, attempt(500), { kind: 'failed', exhaustedStatus: 'unreachable' });
      const after = (await store.getSubscription(tenantId, s.id))!;
      assert.equal(after.status, 'unreachable');
      assert.equal(after.enabled, false);
      assert.deepEqual((await store.listDeliveries({ subscriptionId: s.id, status: 'pending', limit: 10 })), [], 'what waited is cancelled');
      const [r] = await store.publish([ev()]);
      assert.equal(r!.deliveries, 0, 'no new deliveries');
      assert.equal(await store.sendNotice(tenantId, s.id, 'verification'), true, 'a notice still goes to it');
      const [n] = await store.claimDue(1, 60_000);
      assert.equal(n!.event.entity, '$herald');
      await store.complete(n!, attempt(200), { kind: 'succeeded' });
      assert.equal((await store.listEvents({ tenantId, since: 0, order: 'asc', limit: 100 })).some((e) => e.entity === '$herald'), false, 'notices are not listed as events');
      await store.deleteSubscription(tenantId, s.id);
    });

    test('idempotency keys: one event per tenant and key, within a batch too', async () => {
      const [a, b] = await store.publish([ev({ idempotencyKey: 'same' }), ev({ idempotencyKey: 'same' })]);
      assert.equal(a!.event.id, b!.event.id);
      assert.equal(b!.duplicate, true);
      const [c] = await store.publish([ev({ idempotencyKey: 'same' })]);
      assert.equal(c!.event.id, a!.event.id);
    });

    test('idempotency keys in a batch: repeated and stored keys answer as one lookup an event did', async () => {
      await drain();
      const other = (await store.createTenant('T2', `c2-${schema}`, { clientSecretHash: 'b', subscriptionKeyHash: `k2-${schema}`, apiTokenHash: `t2-${schema}` })).id;
      const s1 = await sub();
      const s2 = await sub();
      // Stored earlier: 'old' with two deliveries; the other tenant's 'old' with none.
      const [old] = await store.publish([ev({ idempotencyKey: 'batch-old', entityId: 'o' })]);
      assert.equal(old!.deliveries, 2);
      const [otherOld] = await store.publish([ev({ tenantId: other, idempotencyKey: 'batch-old' })]);
      assert.equal(otherOld!.deliveries, 0);
      // A third subscription now: a stored event answers the deliveries it has, not what a publish would make now.
      const s3 = await sub();
      const rs = await store.publish([
        ev({ idempotencyKey: 'batch-new', entityId: 'a' }),
        ev({ idempotencyKey: 'batch-old', entityId: 'b' }),
        ev({ entityId: 'c' }),
        ev({ idempotencyKey: 'batch-new', entityId: 'd' }),
        ev({ tenantId: other, idempotencyKey: 'batch-new' }),
        ev({ tenantId: other, idempotencyKey: 'batch-old' }),
        ev({ idempotencyKey: 'batch-old', entityId: 'e' }),
        ev({ tenantId: other, idempotencyKey: 'batch-new' }),
        ev({ entityId: 'f' }),
      ]);
      const shape = rs.map((r) => [r.event.tenantId === other ? 'other' : 'T', r.event.entityId, r.deliveries, r.duplicate]);
      assert.deepEqual(shape, [
        ['T', 'a', 3, false],
        ['T', 'o', 2, true],
        ['T', 'c', 3, false],
        ['T', 'a', 3, true],
        ['other', '1', 0, false],
        ['other', '1', 0, true],
        ['T', 'o', 2, true],
        ['other', '1', 0, true],
        ['T', 'f', 3, false],
      ]);
      assert.deepEqual(rs[1]!.event, old!.event, 'a stored key answers the stored event whole');
      assert.equal(rs[5]!.event.id, otherOld!.event.id, 'keys are per tenant');
      assert.equal(rs[3]!.event.id, rs[0]!.event.id);
      assert.equal(rs[7]!.event.id, rs[4]!.event.id);
      assert.notEqual(rs[4]!.event.id, rs[0]!.event.id);
      assert.equal(new Set(rs.map((r) => r.event.id)).size, 6, 'two stored events and four new ones');
      // Only the new events were written: 3 of tenant T with three deliveries each.
      const claimed = await store.claimDue(1000, 60_000);
      assert.equal(claimed.length, 2 + 3 * 3);
      for (const x of claimed) await store.complete(x, attempt(200), { kind: 'succeeded' });
      for (const s of [s1, s2, s3]) await store.deleteSubscription(tenantId, s.id);
    });

    // Defined only on PostgreSQL, so that no run reports it skipped.
    if (engine === 'postgres') test('PostgreSQL: claims and outcomes plan without bitmap scans, other sessions keep them; deliveries has its autovacuum thresholds', async () => {
      const setting = async (db: SqlStore['db']) => (await db.all<{ enable_bitmapscan: string }>('SHOW enable_bitmapscan'))[0]!.enable_bitmapscan;
      assert.equal(await setting(store.db.relaxed), 'off');
      assert.equal(await setting(store.db), 'on');
      const [t] = await store.db.all<{ reloptions: string[] }>("SELECT reloptions FROM pg_class WHERE oid = 'deliveries'::regclass");
      assert.deepEqual([...t!.reloptions].sort(), ['autovacuum_analyze_scale_factor=0.02', 'autovacuum_vacuum_scale_factor=0.02'], 'migration 007: deliveries vacuumed and analyzed at 2 % changed');
    });

    test('a batch naming an unknown tenant writes nothing', async () => {
      const before = (await store.listDeliveries({ tenantId, limit: 1000 })).length;
      const s = await sub();
      await assert.rejects(store.publish([ev(), ev({ tenantId: 'missing' as TenantId })]), /tenant/);
      assert.equal((await store.listDeliveries({ tenantId, limit: 1000 })).length, before);
      await store.deleteSubscription(tenantId, s.id);
    });

    test('retryNow makes a failed delivery due; nextDueAt reports the earliest', async () => {
      await drain();
      const s = await sub();
      await store.publish([ev()]);
      const [c] = await store.claimDue(1, 60_000);
      await store.complete(c!, attempt(500), { kind: 'failed' });
      assert.equal(await store.nextDueAt(), null);
      const r = await store.retryNow(c!.delivery.id);
      assert.ok(r && r !== 'busy');
      assert.equal(r.status, 'pending');
      assert.ok((await store.nextDueAt())! <= Date.now());
      const [again] = await store.claimDue(1, 60_000);
      assert.equal(again!.delivery.id, c!.delivery.id);
      assert.equal(await store.retryNow(again!.delivery.id), 'busy', 'in flight');
      await store.complete(again!, attempt(200), { kind: 'succeeded' });
      await store.deleteSubscription(tenantId, s.id);
    });

    test('claims in parallel never hand one delivery to two claimers', async () => {
      await drain();
      const s = await sub();
      await store.publish(Array.from({ length: 200 }, (_, i) => ev({ entityId: String(i) })));
      const ids: string[] = [];
      // Eight claimers at once, round after round, until nothing is left.
      for (let round = 0; round < 50; round++) {
        const claims: ClaimedDelivery[][] = await Promise.all(Array.from({ length: 8 }, () => store.claimDue(40, 60_000)));
        const got = claims.flat().map((c) => c.delivery.id);
        if (got.length === 0) break;
        ids.push(...got);
      }
      assert.equal(ids.length, 200, 'every delivery was claimed');
      assert.equal(new Set(ids).size, 200, 'none twice');
      await store.deleteSubscription(tenantId, s.id);
    });

    test('a claim takes no more for a subscription than it has room for', async () => {
      await drain();
      const a = await sub();
      const b = await sub();
      await store.publish(Array.from({ length: 20 }, (_, i) => ev({ entityId: String(i) })));
      const c = await store.claimDue(100, 60_000, { bySubscription: new Map([[a.id, 3], [b.id, 0]]), otherwise: 100 });
      assert.equal(c.filter((x) => x.subscription.id === a.id).length, 3);
      assert.equal(c.filter((x) => x.subscription.id === b.id).length, 0, 'a full subscription is left out');
      await store.deleteSubscription(tenantId, a.id);
      await store.deleteSubscription(tenantId, b.id);
    });

    test('a claim that leaves out the same full subscription starts where the last found work; what is due before that waits for a claim that takes it', async () => {
      await drain();
      const full = await sub();
      const other = await sub();
      await store.publish(Array.from({ length: 30 }, (_, i) => ev({ entityId: `c${i}` })));
      const now = Date.now();
      // The full subscription's backlog is older than anything of the other's.
      await store.db.run('UPDATE deliveries SET next_attempt_at = $2 WHERE subscription_id = $1', [full.id, now - 3_600_000]);
      await store.db.run('UPDATE deliveries SET next_attempt_at = $2 WHERE subscription_id = $1', [other.id, now - 600_000]);
      const leaveOut = { bySubscription: new Map([[full.id, 0]]), otherwise: 100 };
      const mine = (c: ClaimedDelivery[], id: string): string[] => c.filter((x) => x.subscription.id === id).map((x) => x.delivery.id);
      const first = await store.claimDue(10, 60_000, leaveOut);
      assert.equal(mine(first, other.id).length, 10);
      assert.equal(mine(first, full.id).length, 0);
      // One of the other's, now due before where that claim found work (as a publish that
      // committed long after its clock was read would be).
      const [late] = await store.db.all<{ id: string }>('SELECT id FROM deliveries WHERE subscription_id = $1 AND lease_token IS NULL ORDER BY id LIMIT 1', [other.id]);
      await store.db.run('UPDATE deliveries SET next_attempt_at = $2 WHERE id = $1', [late!.id, now - 1_800_000]);
      const second = await store.claimDue(100, 60_000, leaveOut);
      assert.equal(mine(second, other.id).length, 19, 'the rest of the other\'s, read from where the last claim began');
      assert.ok(!mine(second, other.id).includes(late!.id), 'the window began after the full subscription\'s backlog');
      const third = await store.claimDue(100, 60_000, { bySubscription: new Map([[full.id, 100]]), otherwise: 100 });
      assert.equal(mine(third, full.id).length, 30);
      assert.deepEqual(mine(third, other.id), [late!.id], 'a claim that takes the full subscription reads from the start');
      await store.deleteSubscription(tenantId, full.id);
      await store.deleteSubscription(tenantId, other.id);
    });
  });
}
