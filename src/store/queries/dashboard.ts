// What the dashboard and the subscriber portal ask the store, on either engine. Lists are
// built with only the conditions asked for, so that each filter can use its index (a
// `($1 IS NULL OR col = $1)` condition cannot), and time ranges become ranges of the
// time-ordered (UUIDv7) ids, which every deliveries index ends with.
import { uuidv7, type DeliveryId, type SubscriptionId, type TenantId } from '../../domain/ids.ts';
import type { Attempt, Delivery, Subscription } from '../../domain/model.ts';
import { NOTICE_ENTITY } from '../../domain/notices.ts';
import { DELIVERY_STATES, type DeliveryState, type Dialect } from '../../domain/states.ts';
import type { Db, Param } from '../db.ts';
import { attemptOf, deliveryOf, subscriptionOf } from '../rows.ts';
import type { SqlStore } from '../sqlStore.ts';

type Row = Record<string, any>;

export interface DeliveryQuery {
  tenantId?: TenantId;
  subscriptionId?: SubscriptionId;
  eventId?: string;
  status?: DeliveryState;
  /** `Entity.Event`, split. */
  eventType?: { entity: string; event: string };
  /** Created at or after (epoch ms). */
  since?: number;
  /** Created at or before (epoch ms). */
  until?: number;
  /** Page newest first: only ids older than this one. */
  before?: string;
  limit: number;
}

export type DeliveryWithType = Delivery & { eventType: string };

export type SubscriptionWithTenant = Subscription & { tenantName: string; deletedAt: number | null };

export interface SubscriptionQuery {
  tenantId?: TenantId;
  dialect?: Dialect;
  /** Page newest first: only ids older than this one. */
  before?: string;
  limit: number;
}

/** What the last hour of attempts says about one subscription. */
export interface AttemptStats {
  attempts: number;
  failures: number;
  last: Attempt | null;
}

/** One new attempt, as the live stream tells it. */
export interface StreamedAttempt {
  id: number;
  deliveryId: string;
  subscriptionId: string;
  tenantId: string;
  eventId: string;
  eventType: string;
  attempt: number;
  statusCode: number | null;
  errorKind: string | null;
  durationMs: number;
  startedAt: number;
  deliveryStatus: string;
}

/** The smallest UUIDv7 of millisecond `ms`: ids compare as text, so `id >= this` means created at or after `ms`. */
export function idFloor(ms: number): string {
  const h = Math.max(0, Math.min(ms, 0xffffffffffff)).toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-0000-0000-000000000000`;
}

/**
 * The health window: counts are over the last hour, read from at most this many of a
 * subscription's newest attempts, so that a busy subscription costs a bounded index range
 * and not an hour of rows. Beyond it the counts stop at the window and the rate is that
 * of the newest attempts.
 */
export const HEALTH_WINDOW = 1000;

/** The states the deliveries_unsettled index holds. */
const UNSETTLED: readonly DeliveryState[] = ['failed', 'held', 'cancelled'];

/** At most this many failed deliveries are made due again by one retry-failed call. */
export const RETRY_FAILED_MAX = 1000;

export class DashboardStore {
  readonly db: Db;
  private readonly store: SqlStore;
  private readonly recorded = new Set<() => void>();

  constructor(store: SqlStore) {
    this.store = store;
    this.db = store.db;
    const before = store.onAttemptsRecorded;
    store.onAttemptsRecorded = () => {
      before?.();
      for (const f of this.recorded) f();
    };
  }

  /** `column IN` the attempt ids bound at $n (integers, which the engines' text lists would not compare with). */
  private idIn(column: string, n: number): string {
    return this.db.engine === 'postgres' ? `${column} = ANY($${n}::bigint[])` : `${column} IN (SELECT value FROM json_each($${n}))`;
  }

  private ids(values: number[]): Param {
    return (this.db.engine === 'postgres' ? values : JSON.stringify(values)) as unknown as Param;
  }

  /**
   * SQLite reads the deliveries in id order by the primary key unless told otherwise, even
   * when the partial index would find a page of failed ones without passing every other.
   */
  private hint(unsettled: boolean): string {
    return unsettled && this.db.engine === 'sqlite' ? 'INDEXED BY deliveries_unsettled' : '';
  }

  /** Calls `fn` whenever this process records attempts. */
  onRecorded(fn: () => void): () => void {
    this.recorded.add(fn);
    return () => this.recorded.delete(fn);
  }

  async listDeliveries(q: DeliveryQuery): Promise<DeliveryWithType[]> {
    const { sql, params } = this.deliveriesSql(q);
    return (await this.db.all(sql, params)).map(withType);
  }

  /** The statement listDeliveries runs, for EXPLAIN in the bench. */
  deliveriesSql(q: DeliveryQuery): { sql: string; params: Param[] } {
    const where: string[] = [];
    const params: Param[] = [];
    const add = (sql: string, ...values: Param[]) => {
      where.push(sql.replace(/\?/g, () => { params.push(values.shift()!); return `$${params.length}`; }));
    };
    if (q.tenantId !== undefined) add('d.tenant_id = ?', q.tenantId);
    if (q.subscriptionId !== undefined) add('d.subscription_id = ?', q.subscriptionId);
    if (q.eventId !== undefined) add('d.event_id = ?', q.eventId);
    // The state goes in as a literal (it is one of DELIVERY_STATES): for one that few
    // deliveries are in, the engine may then read the deliveries_unsettled index, whose
    // condition SQLite sees only when the query repeats it word for word.
    const unsettled = q.status !== undefined && UNSETTLED.includes(q.status);
    if (q.status !== undefined) {
      if (!DELIVERY_STATES.includes(q.status)) throw new Error(`unknown delivery state ${q.status}`);
      where.push(`d.status = '${q.status}'`);
      if (unsettled) where.push(`d.status IN (${UNSETTLED.map((x) => `'${x}'`).join(', ')})`);
    }
    if (q.eventType !== undefined) add('e.entity = ? AND e.event = ?', q.eventType.entity, q.eventType.event);
    if (q.since !== undefined) add('d.id >= ?', idFloor(q.since));
    if (q.until !== undefined) add('d.id < ?', idFloor(q.until + 1));
    if (q.before !== undefined) add('d.id < ?', q.before);
    params.push(q.limit);
    const sql = `SELECT d.*, e.entity AS event_entity, e.event AS event_name FROM deliveries d ${this.hint(unsettled && q.eventId === undefined)} JOIN events e ON e.id = d.event_id
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY d.id DESC LIMIT $${params.length}`;
    return { sql, params };
  }

  async getDelivery(id: string): Promise<DeliveryWithType | null> {
    const rows = await this.db.all(
      'SELECT d.*, e.entity AS event_entity, e.event AS event_name FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = $1', [id],
    );
    return rows[0] ? withType(rows[0]) : null;
  }

  /** Subscriptions that are not deleted, with their tenant's name, newest first. */
  async listSubscriptions(q: SubscriptionQuery): Promise<SubscriptionWithTenant[]> {
    const where = ['s.deleted_at IS NULL'];
    const params: Param[] = [];
    if (q.tenantId !== undefined) { params.push(q.tenantId); where.push(`s.tenant_id = $${params.length}`); }
    if (q.dialect !== undefined) { params.push(q.dialect); where.push(`s.dialect = $${params.length}`); }
    if (q.before !== undefined) { params.push(q.before); where.push(`s.id < $${params.length}`); }
    params.push(q.limit);
    const rows = await this.db.all(
      `SELECT s.*, t.name AS tenant_name FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id
       WHERE ${where.join(' AND ')} ORDER BY s.id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(withTenant);
  }

  /** One subscription that is not deleted, of any tenant (operator) or of `tenantId` (portal). */
  async getSubscription(id: string, tenantId?: TenantId): Promise<SubscriptionWithTenant | null> {
    const rows = await this.db.all(
      `SELECT s.*, t.name AS tenant_name FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id
       WHERE s.id = $1 AND s.deleted_at IS NULL AND (CAST($2 AS TEXT) IS NULL OR s.tenant_id = $2)`,
      [id, tenantId ?? null],
    );
    return rows[0] ? withTenant(rows[0]) : null;
  }

  /**
   * Counts of each subscription's attempts started since `since`, within its newest
   * HEALTH_WINDOW, and its last attempt. One statement for all of them: each part reads
   * only the head of the (subscription_id, id) index.
   */
  async attemptStats(subscriptionIds: string[], since: number): Promise<Map<string, AttemptStats>> {
    const out = new Map<string, AttemptStats>();
    if (subscriptionIds.length === 0) return out;
    const params: Param[] = [since, HEALTH_WINDOW];
    const parts = subscriptionIds.map((id) => {
      params.push(id);
      const p = `$${params.length}`;
      // One pass over the window: its newest row is the last attempt, and those of the hour are counted.
      return `SELECT CAST(${p} AS TEXT) AS sid, MAX(w.id) AS last_id,
          COALESCE(SUM(CASE WHEN w.started_at >= $1 THEN 1 ELSE 0 END), 0) AS n,
          COALESCE(SUM(CASE WHEN w.started_at >= $1 AND NOT (w.status_code IS NOT NULL AND w.status_code >= 200 AND w.status_code < 300) THEN 1 ELSE 0 END), 0) AS failed
        FROM (SELECT id, started_at, status_code FROM attempts WHERE subscription_id = ${p} ORDER BY id DESC LIMIT $2) w`;
    });
    const rows = await this.db.all(parts.join('\nUNION ALL\n'), params);
    const lastIds = rows.map((r) => r.last_id).filter((v) => v !== null);
    const last = new Map<string, Attempt>();
    if (lastIds.length) {
      const attempts = await this.db.all(`SELECT * FROM attempts WHERE ${this.idIn('id', 1)}`, [this.ids(lastIds.map(Number))]);
      for (const a of attempts) last.set(String(a.subscription_id), attemptOf(a));
    }
    for (const r of rows) out.set(r.sid, { attempts: Number(r.n), failures: Number(r.failed), last: last.get(r.sid) ?? null });
    return out;
  }

  /**
   * Makes up to RETRY_FAILED_MAX of a tenant's failed deliveries due now, oldest first,
   * leaving out those whose subscription is paused or deleted (as a single retry does).
   */
  async retryFailed(tenantId: TenantId, subscriptionId?: SubscriptionId): Promise<number> {
    return this.db.tx(async (t) => {
      const now = this.store.clock.now();
      const rows = await t.all<{ id: string }>(
        `SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.tenant_id = $1 AND d.status = 'failed' AND (CAST($2 AS TEXT) IS NULL OR d.subscription_id = $2)
           AND s.deleted_at IS NULL AND s.paused = FALSE
         ORDER BY d.id LIMIT $3`,
        [tenantId, subscriptionId ?? null, RETRY_FAILED_MAX],
      );
      if (rows.length === 0) return 0;
      const n = await t.run(
        `UPDATE deliveries SET status = 'pending', next_attempt_at = $1, lease_token = NULL, updated_at = $1
         WHERE ${t.inList('id', 2)} AND status = 'failed'`,
        [now, t.list(rows.map((r) => r.id))],
      );
      if (n > 0) await this.store.notifyDue(t);
      return n;
    });
  }

  /**
   * A test event (a notice of NOTICE_ENTITY, which no one can publish) and its one delivery
   * to the subscription, due now: it is sent, signed, retried and recorded like any other.
   */
  async queueTest(tenantId: TenantId, subscriptionId: SubscriptionId, notice: string, data: Record<string, unknown>): Promise<DeliveryId> {
    return this.db.tx(async (t) => {
      const now = this.store.clock.now();
      const eventId = uuidv7(now);
      const deliveryId = uuidv7(now) as DeliveryId;
      await t.run(
        'INSERT INTO events (id, tenant_id, entity, event, entity_id, data, occurred_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)',
        [eventId, tenantId, NOTICE_ENTITY, notice, subscriptionId, JSON.stringify(data), now],
      );
      await t.run(
        `INSERT INTO deliveries (id, tenant_id, event_id, subscription_id, status, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $5, $5)`,
        [deliveryId, tenantId, eventId, subscriptionId, now],
      );
      await this.store.notifyDue(t);
      return deliveryId;
    });
  }

  /** The newest attempt id, or 0: where a live stream starts. */
  async lastAttemptId(): Promise<number> {
    const rows = await this.db.all<{ id: number | string | null }>('SELECT MAX(id) AS id FROM attempts');
    return Number(rows[0]?.id ?? 0);
  }

  /** Attempts after `afterId` (and any of `ids`), oldest first, with what the live stream tells of each. */
  async attemptsAfter(afterId: number, ids: number[], limit: number): Promise<StreamedAttempt[]> {
    const select = `SELECT a.id, a.delivery_id, a.subscription_id, a.attempt_no, a.status_code, a.error_kind, a.duration_ms, a.started_at,
        d.tenant_id, d.event_id, d.status AS delivery_status, e.entity, e.event
      FROM attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.id = d.event_id`;
    const rows = await this.db.all(`${select} WHERE a.id > $1 ORDER BY a.id LIMIT $2`, [afterId, limit]);
    if (ids.length) {
      rows.push(...await this.db.all(`${select} WHERE ${this.idIn('a.id', 1)}`, [this.ids(ids)]));
      rows.sort((a, b) => Number(a.id) - Number(b.id));
    }
    return rows.map((r) => ({
      id: Number(r.id), deliveryId: r.delivery_id, subscriptionId: r.subscription_id, tenantId: r.tenant_id, eventId: r.event_id,
      eventType: `${r.entity}.${r.event}`, attempt: Number(r.attempt_no), statusCode: r.status_code === null ? null : Number(r.status_code),
      errorKind: r.error_kind, durationMs: Number(r.duration_ms), startedAt: Number(r.started_at), deliveryStatus: r.delivery_status,
    }));
  }
}

function withType(r: Row): DeliveryWithType {
  return { ...deliveryOf(r), eventType: `${r.event_entity}.${r.event_name}` };
}

function withTenant(r: Row): SubscriptionWithTenant {
  return { ...subscriptionOf(r), tenantName: r.tenant_name, deletedAt: r.deleted_at === null ? null : Number(r.deleted_at) };
}
