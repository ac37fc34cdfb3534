// Entity lines in the store itself (migration 006), on each engine: the places publishes
// take when they race, and what a bulk recovery or a retention pass does to a line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SubscriptionId, TenantId } from '../src/domain/ids.ts';
import type { ClaimedDelivery, NewEvent } from '../src/domain/model.ts';
import { pruneDeliveriesBatch } from '../src/store/queries/retention.ts';
import { createRecovery, recoveryStep, takeRecovery } from '../src/store/queries/recoveries.ts';
import { openStore } from '../src/store/open.ts';
import type { SqlStore } from '../src/store/sqlStore.ts';
import { dropSchema, engines, freshSchema, PG_URL } from './helpers/pg.ts';

const attempt = { startedAt: 0, durationMs: 1, statusCode: 500, errorKind: null, error: null, responseBody: null, worker: 't' } as const;

for (const engine of engines()) {
  describe(`entity lines in the ${engine} store`, () => {
    let dir: string;
    let schema: string;
    const stores: SqlStore[] = [];
    const open = async () => {
      const s = await openStore({ databaseUrl: engine === 'postgres' ? PG_URL : null, databaseSchema: schema, dataDir: dir });
      stores.push(s);
      return s;
    };
    let store: SqlStore;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'herald-lines-'));
      schema = freshSchema();
      store = await open();
      await store.migrate();
      await store.seedEventTypes([{ entity: 'Employee', event: 'Update', description: 'x' }]);
    });
    after(async () => {
      for (const s of stores) await s.close();
      rmSync(dir, { recursive: true, force: true });
      if (engine === 'postgres') await dropSchema(schema);
    });

    const setup = async () => {
      const n = Math.random().toString(36).slice(2);
      const t = await store.createTenant('T', `c-${n}`, { clientSecretHash: 'a', subscriptionKeyHash: `k-${n}`, apiTokenHash: `t-${n}` });
      const sub = await store.createSubscription({
        tenantId: t.id as TenantId, dialect: 'native', url: 'http://127.0.0.1:9/x', description: '', filters: [], paused: false, enabled: true,
        status: 'active', secrets: [], headers: {}, properties: {}, ordering: 'entity',
      });
      return { tenantId: t.id as TenantId, sub };
    };
    const event = (tenantId: TenantId, entityId: string, seq: number): NewEvent => ({
      tenantId, entity: 'Employee', event: 'Update', entityId, entityUri: null, parentType: null, parentId: null, data: { seq }, occurredAt: 0, idempotencyKey: null,
    });
    const line = async (subId: string) => store.db.all<{ id: string; status: string; order_seq: number; next_attempt_at: number | null; seq: string }>(
      `SELECT d.id, d.status, d.order_seq, d.next_attempt_at, e.data AS seq FROM deliveries d JOIN events e ON e.id = d.event_id
       WHERE d.subscription_id = $1 ORDER BY d.order_seq, d.id`, [subId],
    );
    const due = <R extends { status: string; next_attempt_at: number | null }>(rows: R[]) => rows.filter((r) => r.status === 'pending' && r.next_attempt_at !== null);
    /** Claims everything due of the subscription and records each as failed for good. */
    const failAll = async (subId: SubscriptionId) => {
      for (;;) {
        const claims = (await store.claimDue(100, 60_000)).filter((c: ClaimedDelivery) => c.subscription.id === subId);
        if (claims.length === 0) return;
        await store.completeMany(claims.map((claim) => ({ claim, attempt, outcome: { kind: 'failed' as const } })));
      }
    };

    test('publishes of one entity racing from two stores take distinct places in one line, and only the first is due', async () => {
      const { tenantId, sub } = await setup();
      const other = engine === 'postgres' ? await open() : store;
      const n = 30;
      await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 ? other : store).publish([event(tenantId, 'race', i + 1)])));
      const rows = await line(sub.id);
      assert.deepEqual(rows.map((r) => Number(r.order_seq)), Array.from({ length: n }, (_, i) => i + 1), 'places 1..n, none twice');
      assert.equal(due(rows).length, 1, 'one head is due, the rest wait');
      assert.equal(Number(due(rows)[0]!.order_seq), 1);
      // The claim takes the head alone, however wide it is.
      const claims = (await store.claimDue(100, 60_000)).filter((c) => c.subscription.id === sub.id);
      assert.equal(claims.length, 1);
      assert.equal(claims[0]!.delivery.id, rows[0]!.id);
    });

    test('a bulk recovery of an entity\'s failed deliveries lines them up again in their order, one due', async () => {
      const { tenantId, sub } = await setup();
      await store.publish([1, 2, 3, 4].map((s) => event(tenantId, 'rec', s)));
      await failAll(sub.id);
      const failed = await line(sub.id);
      assert.deepEqual(failed.map((r) => r.status), ['failed', 'failed', 'failed', 'failed'], 'each failed in turn');
      // Another entity still has one unfinished: the recovered ones of 'rec' are not held behind it.
      await store.publish([event(tenantId, 'other', 1)]);
      const job = await createRecovery(store, { tenantId, subscriptionId: sub.id, since: 0, until: Date.now() + 60_000, statusCode: null, errorKind: null }, Date.now() + 1);
      assert.equal(job.total, 4);
      assert.equal((await takeRecovery(store.db, 'me', Date.now() + 2, 60_000))?.id, job.id);
      const stepAt = Date.now() + 2;
      const step = await recoveryStep(store, job.id, 'me', stepAt, { leaseMs: 60_000, budget: 100, window: 100 });
      assert.equal(step.requeued, 4);
      // The step made them due at its own time, 2 ms ahead: the claims below must come after it.
      while (Date.now() <= stepAt) await new Promise((r) => setTimeout(r, 1));
      const rows = (await line(sub.id)).filter((r) => r.status === 'pending' && JSON.parse(r.seq).seq !== undefined);
      const rec = rows.filter((r) => failed.some((f) => f.id === r.id));
      assert.equal(rec.length, 4);
      assert.deepEqual(rec.map((r) => JSON.parse(r.seq).seq), [1, 2, 3, 4], 'the recovered keep their publish order in the line');
      // SQLite parks all but the first; PostgreSQL leaves them due and the claim passes them by.
      if (engine === 'sqlite') assert.equal(due(rec).length, 1, 'only the first recovered is due');
      const claims = (await store.claimDue(100, 60_000)).filter((c) => c.subscription.id === sub.id);
      assert.deepEqual(claims.map((c) => `${c.event.entityId} ${(c.event.data as { seq: number }).seq}`).sort(), ['other 1', 'rec 1'],
        'a claim takes the first of each line, the other entity\'s too');
      // Each outcome lets the next through, in order.
      const got: number[] = [];
      let head = claims.find((c) => c.event.entityId === 'rec')!;
      for (;;) {
        got.push((head.event.data as { seq: number }).seq);
        await store.completeMany([{ claim: head, attempt: { ...attempt, statusCode: 200 }, outcome: { kind: 'succeeded' } }]);
        const next = (await store.claimDue(100, 60_000)).filter((c) => c.subscription.id === sub.id && c.event.entityId === 'rec');
        if (next.length === 0) break;
        assert.equal(next.length, 1, 'one at a time');
        head = next[0]!;
      }
      assert.deepEqual(got, [1, 2, 3, 4]);
    });

    test('retention removing an entity\'s finished deliveries leaves its line as it was', async () => {
      const { tenantId, sub } = await setup();
      await store.publish([1, 2].map((s) => event(tenantId, 'ret', s)));
      // The first finishes (fails for good); the second becomes the head.
      const first = (await store.claimDue(100, 60_000)).filter((c) => c.subscription.id === sub.id);
      assert.equal(first.length, 1);
      await store.completeMany([{ claim: first[0]!, attempt, outcome: { kind: 'failed' } }]);
      await store.publish([event(tenantId, 'ret', 3)]);
      const r = await pruneDeliveriesBatch(store.db, { after: '', below: 'ffffffff', cutoff: Date.now() + 60_000 * 60, now: Date.now(), limit: 10_000 });
      assert.ok(r.deleted >= 1, 'the finished one went');
      const rows = await line(sub.id);
      assert.deepEqual(rows.map((x) => JSON.parse(x.seq).seq), [2, 3]);
      assert.deepEqual(due(rows).map((x) => JSON.parse(x.seq).seq), [2], 'the head stays due, the next waits');
      await store.publish([event(tenantId, 'ret', 4)]);
      const after = await line(sub.id);
      assert.deepEqual(after.map((x) => JSON.parse(x.seq).seq), [2, 3, 4], 'a later publish joins the end');
      assert.equal(due(after).length, 1);
    });
  });
}
