// Bulk recovery: the store verbs of a job that sends a range of failed deliveries again.
// A job is one row; each step of it is one transaction that re-queues a few deliveries
// and moves the job's cursor past them, so a step either happened whole or not at all, and
// no delivery is re-queued twice by one job however often its process dies.
import { uuidv7, type SubscriptionId, type TenantId } from '../../domain/ids.ts';
import type { ErrorKind } from '../../domain/states.ts';
import type { Db } from '../db.ts';
import type { SqlStore } from '../sqlStore.ts';

export const RECOVERY_STATES = ['running', 'done', 'cancelled'] as const;
export type RecoveryState = (typeof RECOVERY_STATES)[number];

export interface NewRecovery {
  tenantId: TenantId;
  /** Null: every subscription of the tenant. */
  subscriptionId: SubscriptionId | null;
  /** Deliveries created in [since, until), epoch ms. */
  since: number;
  until: number;
  /** Only deliveries whose last attempt got this status code. */
  statusCode: number | null;
  /** Only deliveries whose last attempt failed this way. */
  errorKind: ErrorKind | null;
}

export interface Recovery extends NewRecovery {
  id: string;
  state: RecoveryState;
  /** Failed deliveries that matched when the job was created. */
  total: number;
  /** Re-queued so far. */
  done: number;
  /** Matched, but their subscription was deleted or is not enabled: left as they are. */
  skipped: number;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

type Row = Record<string, any>;
const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));

const recoveryOf = (r: Row): Recovery => ({
  id: r.id, tenantId: r.tenant_id, subscriptionId: r.subscription_id, since: Number(r.since), until: Number(r.until),
  statusCode: n(r.status_code), errorKind: r.error_kind, state: r.state, total: Number(r.total), done: Number(r.done),
  skipped: Number(r.skipped), createdAt: Number(r.created_at), updatedAt: Number(r.updated_at), finishedAt: n(r.finished_at),
});

/**
 * The lowest UUIDv7 of a millisecond: delivery ids begin with their creation time, so a
 * time range is an id range, and the (subscription_id, id) and (tenant_id, id) indexes serve it.
 */
export function idAtMs(ms: number): string {
  const h = Math.max(0, Math.min(ms, 0xffffffffffff)).toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-0000-0000-000000000000`;
}

/** The scope column and its value: a job covers one subscription or one whole tenant. */
const scope = (j: NewRecovery): [string, string] => (j.subscriptionId ? ['d.subscription_id', j.subscriptionId] : ['d.tenant_id', j.tenantId]);

/**
 * A job reads only failed deliveries of its scope, through the partial indexes of
 * migration 004 (deliveries_failed_subscription, deliveries_failed_tenant), which cover
 * the count; nothing on the way from publish to success writes to them.
 */
const FAILED = "d.status = 'failed'";

/** Whether a delivery's last attempt is the one the job asks for. */
const LAST_KIND = '(SELECT a.error_kind FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1)';

/** Creates a job, counting what it will re-queue: deliveries failed by now, in its range, with its filters. */
export async function createRecovery(store: SqlStore, j: NewRecovery, now: number): Promise<Recovery> {
  return store.db.tx(async (t) => {
    const [col, val] = scope(j);
    const rows = await t.all<{ c: number | string }>(
      `SELECT COUNT(*) AS c FROM deliveries d
       WHERE ${FAILED} AND ${col} = $1 AND d.id > $2 AND d.id < $3 AND d.updated_at <= $4
         AND (CAST($5 AS INTEGER) IS NULL OR d.last_status_code = $5)
         AND (CAST($6 AS TEXT) IS NULL OR ${LAST_KIND} = $6)`,
      [val, idAtMs(j.since), idAtMs(j.until), now, j.statusCode, j.errorKind],
    );
    const total = Number(rows[0]?.c ?? 0);
    const id = uuidv7(now);
    const state: RecoveryState = total === 0 ? 'done' : 'running';
    const created = await t.all(
      `INSERT INTO recoveries (id, tenant_id, subscription_id, since, until, status_code, error_kind, state, total, cursor, created_at, updated_at, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) RETURNING *`,
      [id, j.tenantId, j.subscriptionId, j.since, j.until, j.statusCode, j.errorKind, state, total, idAtMs(j.since), now, state === 'done' ? now : null],
    );
    return recoveryOf(created[0]!);
  });
}

/** One job; with `tenantId`, only if it is that tenant's. */
export async function getRecovery(db: Db, id: string, tenantId?: TenantId): Promise<Recovery | null> {
  const rows = await db.all('SELECT * FROM recoveries WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR tenant_id = $2)', [id, tenantId ?? null]);
  return rows[0] ? recoveryOf(rows[0]) : null;
}

/** Jobs newest first, of one tenant or of all. */
export async function listRecoveries(db: Db, f: { tenantId?: TenantId; before?: string; limit: number }): Promise<Recovery[]> {
  const rows = await db.all(
    `SELECT * FROM recoveries WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) AND (CAST($2 AS TEXT) IS NULL OR id < $2)
     ORDER BY id DESC LIMIT $3`,
    [f.tenantId ?? null, f.before ?? null, f.limit],
  );
  return rows.map(recoveryOf);
}

/** Stops a running job where it is; what it re-queued stays queued. False when it is not running. */
export async function cancelRecovery(db: Db, id: string, now: number, tenantId?: TenantId): Promise<boolean> {
  const changed = await db.run(
    `UPDATE recoveries SET state = 'cancelled', owner = NULL, updated_at = $2, finished_at = $2
     WHERE id = $1 AND state = 'running' AND (CAST($3 AS TEXT) IS NULL OR tenant_id = $3)`,
    [id, now, tenantId ?? null],
  );
  return changed > 0;
}

/**
 * Takes the oldest running job nobody holds (no owner, or an owner whose lease ran out), or
 * one `owner` already holds. The conditional update is the lock: of two processes trying
 * at once, one changes the row and the other changes nothing.
 */
export async function takeRecovery(db: Db, owner: string, now: number, leaseMs: number): Promise<Recovery | null> {
  const free = await db.all<{ id: string }>(
    `SELECT id FROM recoveries WHERE state = 'running' AND (owner IS NULL OR owner = $1 OR lease_until < $2) ORDER BY created_at, id LIMIT 1`,
    [owner, now],
  );
  const id = free[0]?.id;
  if (!id) return null;
  const rows = await db.all(
    `UPDATE recoveries SET owner = $2, lease_until = $3 WHERE id = $1 AND state = 'running' AND (owner IS NULL OR owner = $2 OR lease_until < $4) RETURNING *`,
    [id, owner, now + leaseMs, now],
  );
  return rows[0] ? recoveryOf(rows[0]) : null;
}

export interface StepResult {
  /** Null: the job is no longer this owner's (cancelled, or taken over after a lost lease). */
  job: Recovery | null;
  requeued: number;
}

/**
 * One step of a job, in one transaction: reads up to `window` failed deliveries of its
 * scope past the cursor, re-queues up to `budget` of those that match (pending now; held if their subscription
 * is paused, so they go out when it is resumed), counts the ones whose subscription is gone
 * or not enabled as skipped, and moves the cursor to the last delivery looked at. A
 * delivery is re-queued only while it is still failed, and still failed since before the
 * job was made, so a delivery retried meanwhile by hand is not sent again by the job.
 */
export async function recoveryStep(store: SqlStore, id: string, owner: string, now: number, o: { leaseMs: number; budget: number; window: number }): Promise<StepResult> {
  return store.db.tx(async (t) => {
    const held = await t.all('UPDATE recoveries SET lease_until = $3 WHERE id = $1 AND owner = $2 AND state = $4 RETURNING *', [id, owner, now + o.leaseMs, 'running']);
    if (!held[0]) return { job: null, requeued: 0 };
    const job = recoveryOf(held[0]);
    const [col, val] = scope(job);
    // The window comes from the index alone, so that its scan ends after `window` rows: with
    // the join in the same query, PostgreSQL read every failed delivery left in the range on
    // every step (a bitmap scan, then a sort).
    const rows = await t.all(
      `WITH w AS (SELECT d.id FROM deliveries d WHERE ${FAILED} AND ${col} = $1 AND d.id > $2 AND d.id < $3 ORDER BY d.id LIMIT $4)
       SELECT d.id, d.status, d.updated_at, d.last_status_code, s.paused, s.enabled, s.deleted_at,
         CASE WHEN CAST($5 AS TEXT) IS NOT NULL THEN ${LAST_KIND} END AS last_kind
       FROM w JOIN deliveries d ON d.id = w.id JOIN subscriptions s ON s.id = d.subscription_id ORDER BY d.id`,
      [val, held[0].cursor ?? idAtMs(job.since), idAtMs(job.until), o.window, job.errorKind],
    );
    const pending: string[] = [];
    const onHold: string[] = [];
    let skipped = 0;
    let cursor: string | null = null;
    let full = false;
    for (const r of rows) {
      const matches = r.status === 'failed' && Number(r.updated_at) <= job.createdAt
        && (job.statusCode === null || n(r.last_status_code) === job.statusCode)
        && (job.errorKind === null || r.last_kind === job.errorKind);
      if (matches && r.deleted_at === null && Boolean(r.enabled)) {
        if (pending.length + onHold.length >= o.budget) { full = true; break; }
        (r.paused ? onHold : pending).push(r.id);
      } else if (matches) {
        skipped++;
      }
      cursor = r.id;
    }
    // The same path as a delivery retried by hand (retryNow): due now, lease cleared.
    let requeued = 0;
    if (pending.length) {
      requeued += await t.run(
        `UPDATE deliveries SET status = 'pending', next_attempt_at = $1, lease_token = NULL, updated_at = $1 WHERE ${t.inList('id', 2)} AND status = 'failed'`,
        [now, t.list(pending)],
      );
    }
    if (onHold.length) {
      requeued += await t.run(
        `UPDATE deliveries SET status = 'held', next_attempt_at = $1, lease_token = NULL, updated_at = $1 WHERE ${t.inList('id', 2)} AND status = 'failed'`,
        [now, t.list(onHold)],
      );
    }
    const finished = !full && rows.length < o.window;
    const after = await t.all(
      `UPDATE recoveries SET cursor = COALESCE($2, cursor), done = done + $3, skipped = skipped + $4, updated_at = $5,
         state = $6, finished_at = $7, owner = CASE WHEN $8 THEN NULL ELSE owner END
       WHERE id = $1 RETURNING *`,
      [id, cursor, requeued, skipped, now, finished ? 'done' : 'running', finished ? now : null, finished],
    );
    if (pending.length) await store.notifyDue(t);
    return { job: recoveryOf(after[0]!), requeued };
  });
}
