import { randomBytes } from 'node:crypto';
import type { EventType } from '../domain/eventTypes.ts';
import { uuidv7, type DeliveryId, type EventId, type SubscriptionId, type TenantId } from '../domain/ids.ts';
import type {
  Attempt, AttemptRecord, ClaimedDelivery, Delivery, DeliveryFilter, HeraldEvent, NewEvent, NewSubscription,
  EventFilter, LastAttempt, Outcome, PublishResult, Subscription, SubscriptionPatch, Tenant, TenantCredentialHashes,
} from '../domain/model.ts';
import { NOTICE_ENTITY } from '../domain/notices.ts';
import { subscriptionMatches } from '../domain/eventTypes.ts';
import { UnprocessableError } from '../domain/errors.ts';
import type { DeliveryState, Dialect, ErrorKind } from '../domain/states.ts';
import { insertMany, type Db, type Param } from './db.ts';
import { migrate } from './migrate.ts';
import type { ClaimRoom, Store } from './store.ts';
import { systemClock, type Clock } from '../domain/clock.ts';
import { OUT_OF_SERVICE } from '../domain/outOfService.ts';
import { resetStreak, streakWork, takeOutOfService, trackStreaks, type AutoDisablePolicy } from './queries/autoDisable.ts';

type Row = Record<string, any>;

const tenantOf = (r: Row): Tenant => ({
  id: r.id, number: Number(r.number), name: r.name, clientId: r.client_id, createdAt: Number(r.created_at),
});

export const subscriptionOf = (r: Row): Subscription => ({
  id: r.id, tenantId: r.tenant_id, dialect: r.dialect, url: r.url, description: r.description,
  filters: JSON.parse(r.filters), paused: Boolean(r.paused), enabled: Boolean(r.enabled), status: r.status,
  secrets: JSON.parse(r.secrets), headers: JSON.parse(r.headers), properties: JSON.parse(r.properties),
  createdAt: Number(r.created_at), updatedAt: Number(r.updated_at),
});

const eventOf = (r: Row): HeraldEvent => ({
  id: r.id, tenantId: r.tenant_id, entity: r.entity, event: r.event, entityId: r.entity_id,
  entityUri: r.entity_uri, parentType: r.parent_type, parentId: r.parent_id, data: JSON.parse(r.data),
  occurredAt: Number(r.occurred_at), createdAt: Number(r.created_at), idempotencyKey: r.idempotency_key,
});

export function deliveryOf(r: Row, now = Date.now()): Delivery {
  const leased = r.lease_token !== null && r.status === 'pending' && Number(r.next_attempt_at) > now;
  return {
    id: r.id, tenantId: r.tenant_id, eventId: r.event_id, subscriptionId: r.subscription_id,
    status: r.status as DeliveryState, attempts: Number(r.attempts),
    nextAttemptAt: r.status === 'pending' && !leased ? Number(r.next_attempt_at) : null,
    inFlight: leased, lastStatusCode: r.last_status_code === null ? null : Number(r.last_status_code),
    lastError: r.last_error, createdAt: Number(r.created_at), updatedAt: Number(r.updated_at),
  };
}

export const attemptOf = (r: Row): Attempt => ({
  id: Number(r.id), deliveryId: r.delivery_id, attemptNo: Number(r.attempt_no), startedAt: Number(r.started_at),
  durationMs: Number(r.duration_ms), statusCode: r.status_code === null ? null : Number(r.status_code),
  errorKind: r.error_kind as ErrorKind | null, error: r.error, responseBody: r.response_body, worker: r.worker,
  requestHeaders: r.request_headers ? JSON.parse(r.request_headers) : null,
});

const headersJson = (a: AttemptRecord): string | null => (a.requestHeaders ? JSON.stringify(a.requestHeaders) : null);

const json = (v: unknown): string => JSON.stringify(v);

export interface Completion {
  claim: ClaimedDelivery;
  attempt: AttemptRecord;
  outcome: Outcome;
}

/** What an outcome writes as the delivery's state before the subscription is looked at. */
const recordedKind = (o: Outcome): string => (o.kind === 'retry' ? 'retry' : o.kind === 'succeeded' ? 'succeeded' : 'failed');

/** The error text kept on the delivery: the attempt's own, or the HTTP status it got. */
const lastError = (a: AttemptRecord): string | null =>
  a.error ?? (a.statusCode !== null && (a.statusCode < 200 || a.statusCode > 299) ? `HTTP ${a.statusCode}` : null);

/**
 * The delivery's next state, given its current status, the recorded kind and its
 * subscription (s): a cancelled delivery stays cancelled; a retry waits, is held while the
 * subscription is paused, and is cancelled if the subscription was deleted.
 */
const nextStateSql = (status: string, kind: string) => `CASE WHEN ${status} = 'cancelled' THEN 'cancelled'
  WHEN ${kind} <> 'retry' THEN ${kind}
  WHEN s.deleted_at IS NOT NULL THEN 'cancelled' WHEN s.paused THEN 'held' ELSE 'pending' END`;

/** Herald's storage, one set of statements over either engine. */
export class SqlStore implements Store {
  readonly db: Db;
  readonly engine: Db['engine'];
  private readonly onListen: ((wake: () => void) => Promise<void>) | null;
  private readonly notifySql: string | null;
  /** Due times, leases and the in-flight test are all read on this clock, the dispatcher's own. */
  readonly clock: Clock;

  constructor(db: Db, opts: { listen?: (wake: () => void) => Promise<void>; notifySql?: string; clock?: Clock } = {}) {
    this.db = db;
    this.engine = db.engine;
    this.clock = opts.clock ?? systemClock;
    this.onListen = opts.listen ?? null;
    this.notifySql = opts.notifySql ?? null;
  }

  migrate(): Promise<number[]> {
    return migrate(this.db);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async listen(wake: () => void): Promise<void> {
    if (this.onListen) await this.onListen(wake);
  }

  /** Tells other processes that deliveries became due (no-op on SQLite). */
  private async notify(t: Db): Promise<void> {
    if (this.notifySql) await t.all(this.notifySql);
  }

  /** The same, for store verbs kept in other files (src/store/queries/). */
  notifyDue(t: Db): Promise<void> {
    return this.notify(t);
  }

  /** Called after attempts are recorded, so that the dashboard's live stream looks at once rather than at its next poll. */
  onAttemptsRecorded: (() => void) | null = null;

  /** Failures in a row that take a subscription out of service (queries/autoDisable.ts); null: never. */
  autoDisable: AutoDisablePolicy | null = null;

  // ---- tenants ----

  async createTenant(name: string, clientId: string, h: TenantCredentialHashes): Promise<Tenant> {
    const id = uuidv7();
    const now = Date.now();
    return this.db.tx(async (t) => {
      const numberSql = t.engine === 'sqlite' ? '(SELECT COALESCE(MAX(number), 0) + 1 FROM tenants)' : 'DEFAULT';
      const rows = await t.all(
        `INSERT INTO tenants (id, number, name, client_id, client_secret_hash, subscription_key_hash, api_token_hash, created_at)
         VALUES ($1, ${numberSql}, $2, $3, $4, $5, $6, $7) RETURNING *`,
        [id, name, clientId, h.clientSecretHash, h.subscriptionKeyHash, h.apiTokenHash, now],
      );
      return tenantOf(rows[0]!);
    });
  }

  async listTenants(): Promise<Tenant[]> {
    return (await this.db.all('SELECT * FROM tenants ORDER BY created_at, id')).map(tenantOf);
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const rows = await this.db.all('SELECT * FROM tenants WHERE id = $1', [id]);
    return rows[0] ? tenantOf(rows[0]) : null;
  }

  async deleteTenant(id: string): Promise<boolean> {
    return (await this.db.tx((t) => t.run('DELETE FROM tenants WHERE id = $1', [id]))) > 0;
  }

  async tenantByApiTokenHash(hash: string): Promise<Tenant | null> {
    const rows = await this.db.all('SELECT * FROM tenants WHERE api_token_hash = $1', [hash]);
    return rows[0] ? tenantOf(rows[0]) : null;
  }

  async tenantBySubscriptionKeyHash(hash: string): Promise<Tenant | null> {
    const rows = await this.db.all('SELECT * FROM tenants WHERE subscription_key_hash = $1', [hash]);
    return rows[0] ? tenantOf(rows[0]) : null;
  }

  async tenantCredentialsByClientId(clientId: string): Promise<(Tenant & TenantCredentialHashes) | null> {
    const rows = await this.db.all<Row>('SELECT * FROM tenants WHERE client_id = $1', [clientId]);
    const r = rows[0];
    if (!r) return null;
    return { ...tenantOf(r), clientSecretHash: r.client_secret_hash, subscriptionKeyHash: r.subscription_key_hash, apiTokenHash: r.api_token_hash };
  }

  // ---- catalog ----

  async listEventTypes(): Promise<EventType[]> {
    return this.db.all<EventType>('SELECT entity, event, description FROM event_types ORDER BY entity, event');
  }

  async putEventType(e: EventType): Promise<boolean> {
    return this.db.tx(async (t) => {
      const changed = await t.run('UPDATE event_types SET description = $3 WHERE entity = $1 AND event = $2', [e.entity, e.event, e.description]);
      if (changed > 0) return false;
      await t.run('INSERT INTO event_types (entity, event, description, created_at) VALUES ($1, $2, $3, $4)', [e.entity, e.event, e.description, Date.now()]);
      return true;
    });
  }

  async seedEventTypes(types: readonly EventType[]): Promise<void> {
    const now = Date.now();
    await this.db.tx(async (t) => {
      for (const e of types) {
        await t.run('INSERT INTO event_types (entity, event, description, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [e.entity, e.event, e.description, now]);
      }
    });
  }

  // ---- subscriptions ----

  async createSubscription(s: NewSubscription, notice?: string): Promise<Subscription> {
    const now = this.clock.now();
    return this.db.tx(async (t) => {
      const rows = await t.all(
        `INSERT INTO subscriptions (id, tenant_id, dialect, url, description, filters, paused, enabled, status, secrets, headers, properties, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING *`,
        [uuidv7(now), s.tenantId, s.dialect, s.url, s.description, json(s.filters), s.paused, s.enabled, s.status, json(s.secrets), json(s.headers), json(s.properties), now],
      );
      const sub = subscriptionOf(rows[0]!);
      if (notice) await this.queueNotice(t, sub.tenantId, sub.id, notice, now);
      return sub;
    });
  }

  async sendNotice(tenantId: TenantId, id: SubscriptionId, notice: string): Promise<boolean> {
    return this.db.tx(async (t) => {
      const rows = await t.all('SELECT id FROM subscriptions WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL', [id, tenantId]);
      if (rows.length === 0) return false;
      await this.queueNotice(t, tenantId, id, notice, this.clock.now());
      return true;
    });
  }

  private async queueNotice(t: Db, tenantId: string, subscriptionId: string, notice: string, now: number): Promise<void> {
    const eventId = uuidv7(now);
    await t.run(
      `INSERT INTO events (id, tenant_id, entity, event, entity_id, data, occurred_at, created_at) VALUES ($1, $2, $3, $4, $5, '{}', $6, $6)`,
      [eventId, tenantId, NOTICE_ENTITY, notice, subscriptionId, now],
    );
    await t.run(
      `INSERT INTO deliveries (id, tenant_id, event_id, subscription_id, status, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $5, $5)`,
      [uuidv7(now), tenantId, eventId, subscriptionId, now],
    );
    await this.notify(t);
  }

  async getSubscription(tenantId: TenantId, id: string, dialect?: Dialect): Promise<Subscription | null> {
    const rows = await this.db.all(
      'SELECT * FROM subscriptions WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL AND (CAST($3 AS TEXT) IS NULL OR dialect = $3)',
      [id, tenantId, dialect ?? null],
    );
    return rows[0] ? subscriptionOf(rows[0]) : null;
  }

  async listSubscriptions(tenantId: TenantId, dialect: Dialect): Promise<Subscription[]> {
    const rows = await this.db.all(
      'SELECT * FROM subscriptions WHERE tenant_id = $1 AND dialect = $2 AND deleted_at IS NULL ORDER BY id', [tenantId, dialect],
    );
    return rows.map(subscriptionOf);
  }

  async updateSubscription(tenantId: TenantId, id: SubscriptionId, patch: SubscriptionPatch): Promise<Subscription | null> {
    return this.db.tx(async (t) => {
      const rows = await t.all('SELECT * FROM subscriptions WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL', [id, tenantId]);
      if (!rows[0]) return null;
      const old = subscriptionOf(rows[0]);
      const s: Subscription = { ...old, ...patch, updatedAt: this.clock.now() };
      await t.run(
        `UPDATE subscriptions SET url = $2, description = $3, filters = $4, paused = $5, enabled = $6, status = $7,
           secrets = $8, headers = $9, properties = $10, updated_at = $11 WHERE id = $1`,
        [id, s.url, s.description, json(s.filters), s.paused, s.enabled, s.status, json(s.secrets), json(s.headers), json(s.properties), s.updatedAt],
      );
      if (s.paused && !old.paused) await this.holdWaiting(t, id, s.updatedAt);
      if (!s.paused && old.paused) await this.releaseHeld(t, id, s.updatedAt);
      return s;
    });
  }

  /** Waiting deliveries of a paused subscription are held; one in flight finishes and then sees the pause. */
  private async holdWaiting(t: Db, id: SubscriptionId, now: number): Promise<void> {
    await t.run("UPDATE deliveries SET status = 'held', updated_at = $2 WHERE subscription_id = $1 AND status = 'pending'", [id, now]);
  }

  private async releaseHeld(t: Db, id: SubscriptionId, now: number): Promise<void> {
    await resetStreak(t, id);
    const n = await t.run(
      `UPDATE deliveries SET status = 'pending', updated_at = $2,
         next_attempt_at = CASE WHEN lease_token IS NULL THEN $2 ELSE next_attempt_at END
       WHERE subscription_id = $1 AND status = 'held'`,
      [id, now],
    );
    if (n > 0) await this.notify(t);
  }

  async deleteSubscription(tenantId: TenantId, id: SubscriptionId): Promise<boolean> {
    return this.db.tx(async (t) => {
      const now = Date.now();
      const n = await t.run('UPDATE subscriptions SET deleted_at = $3, updated_at = $3 WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL', [id, tenantId, now]);
      if (n === 0) return false;
      await t.run(
        "UPDATE deliveries SET status = 'cancelled', updated_at = $2 WHERE subscription_id = $1 AND status IN ('pending', 'held')",
        [id, now],
      );
      return true;
    });
  }

  // ---- events ----

  async publish(events: NewEvent[]): Promise<PublishResult[]> {
    try {
      return await this.publishOnce(events);
    } catch (err) {
      // Two concurrent publishes with one idempotency key: the loser retries and finds the winner's event.
      if ((err as { code?: string }).code === '23505') return this.publishOnce(events);
      throw err;
    }
  }

  private async publishOnce(events: NewEvent[]): Promise<PublishResult[]> {
    return this.db.tx(async (t) => {
      const now = this.clock.now();
      const results: PublishResult[] = [];
      const subsByTenant = new Map<string, { id: string; filters: string[]; paused: boolean }[]>();
      const byKey = new Map<string, PublishResult>();
      const eventRows: Param[][] = [];
      const deliveryRows: Param[][] = [];
      let due = false;

      for (const e of events) {
        let subs = subsByTenant.get(e.tenantId);
        if (!subs) {
          const tenant = await t.all('SELECT id FROM tenants WHERE id = $1', [e.tenantId]);
          if (tenant.length === 0) throw new UnprocessableError('tenant_id', `tenant ${e.tenantId} does not exist`);
          const rows = await t.all(
            'SELECT id, filters, paused FROM subscriptions WHERE tenant_id = $1 AND deleted_at IS NULL AND enabled = TRUE ORDER BY id',
            [e.tenantId],
          );
          subs = rows.map((r) => ({ id: r.id as string, filters: JSON.parse(r.filters as string) as string[], paused: Boolean(r.paused) }));
          subsByTenant.set(e.tenantId, subs);
        }
        if (e.idempotencyKey !== null) {
          const mapKey = `${e.tenantId}\u0000${e.idempotencyKey}`;
          const seen = byKey.get(mapKey) ?? (await this.findByIdempotencyKey(t, e.tenantId, e.idempotencyKey));
          if (seen) {
            const dup = { ...seen, duplicate: true };
            results.push(dup);
            byKey.set(mapKey, dup);
            continue;
          }
        }
        const ev: HeraldEvent = { ...e, id: uuidv7(now) as EventId, createdAt: now };
        eventRows.push([ev.id, ev.tenantId, ev.entity, ev.event, ev.entityId, ev.entityUri, ev.parentType, ev.parentId, json(ev.data), ev.occurredAt, now, ev.idempotencyKey]);
        let n = 0;
        for (const s of subs) {
          if (!subscriptionMatches(s.filters, e.entity, e.event)) continue;
          deliveryRows.push([uuidv7(now), ev.tenantId, ev.id, s.id, s.paused ? 'held' : 'pending', now, now, now]);
          if (!s.paused) due = true;
          n++;
        }
        const r: PublishResult = { event: ev, deliveries: n, duplicate: false };
        results.push(r);
        if (e.idempotencyKey !== null) byKey.set(`${e.tenantId}\u0000${e.idempotencyKey}`, r);
      }
      await insertMany(t, 'events', ['id', 'tenant_id', 'entity', 'event', 'entity_id', 'entity_uri', 'parent_type', 'parent_id', 'data', 'occurred_at', 'created_at', 'idempotency_key'], eventRows);
      await insertMany(t, 'deliveries', ['id', 'tenant_id', 'event_id', 'subscription_id', 'status', 'next_attempt_at', 'created_at', 'updated_at'], deliveryRows);
      if (due) await this.notify(t);
      return results;
    });
  }

  private async findByIdempotencyKey(t: Db, tenantId: string, key: string): Promise<PublishResult | null> {
    const rows = await t.all('SELECT * FROM events WHERE tenant_id = $1 AND idempotency_key = $2', [tenantId, key]);
    if (!rows[0]) return null;
    const count = await t.all<{ n: number }>('SELECT COUNT(*) AS n FROM deliveries WHERE event_id = $1', [rows[0].id]);
    return { event: eventOf(rows[0]), deliveries: Number(count[0]!.n), duplicate: true };
  }

  async getEvent(id: string): Promise<HeraldEvent | null> {
    const rows = await this.db.all('SELECT * FROM events WHERE id = $1', [id]);
    return rows[0] ? eventOf(rows[0]) : null;
  }

  async listEvents(f: EventFilter): Promise<HeraldEvent[]> {
    // $5 is always used, so that PostgreSQL can type it: a list of types, or NULL for every type.
    const typeFilter = f.types ? `AND ${this.db.inList("(entity || '.' || event)", 5)}` : 'AND CAST($5 AS TEXT) IS NULL';
    const rows = await this.db.all(
      `SELECT * FROM events
       WHERE tenant_id = $1 AND created_at >= $2 AND entity <> $3 AND (CAST($4 AS TEXT) IS NULL OR parent_id = $4) ${typeFilter}
         AND (CAST($6 AS TEXT) IS NULL OR ${f.order === 'asc' ? 'id > $6' : 'id < $6'})
       ORDER BY id ${f.order === 'asc' ? 'ASC' : 'DESC'} LIMIT $7`,
      [f.tenantId, f.since, NOTICE_ENTITY, f.parentId ?? null, f.types ? this.db.list(f.types) : null, f.after ?? null, f.limit],
    );
    return rows.map(eventOf);
  }

  async lastAttempt(tenantId: TenantId, dialect: Dialect): Promise<LastAttempt | null> {
    const rows = await this.db.all(
      `SELECT a.status_code, a.started_at FROM attempts a JOIN subscriptions s ON s.id = a.subscription_id
       WHERE s.tenant_id = $1 AND s.dialect = $2 ORDER BY a.id DESC LIMIT 1`,
      [tenantId, dialect],
    );
    const r = rows[0];
    return r ? { statusCode: r.status_code === null ? null : Number(r.status_code), startedAt: Number(r.started_at) } : null;
  }

  async listDeliveries(f: DeliveryFilter): Promise<Delivery[]> {
    const rows = await this.db.all(
      `SELECT * FROM deliveries
       WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) AND (CAST($2 AS TEXT) IS NULL OR subscription_id = $2)
         AND (CAST($3 AS TEXT) IS NULL OR event_id = $3) AND (CAST($4 AS TEXT) IS NULL OR status = $4)
         AND (CAST($5 AS TEXT) IS NULL OR id < $5)
       ORDER BY id DESC LIMIT $6`,
      [f.tenantId ?? null, f.subscriptionId ?? null, f.eventId ?? null, f.status ?? null, f.before ?? null, f.limit],
    );
    const now = this.clock.now();
    return rows.map((r) => deliveryOf(r, now));
  }

  async getDelivery(id: string): Promise<Delivery | null> {
    const rows = await this.db.all('SELECT * FROM deliveries WHERE id = $1', [id]);
    return rows[0] ? deliveryOf(rows[0], this.clock.now()) : null;
  }

  async listAttempts(deliveryId: DeliveryId): Promise<Attempt[]> {
    return (await this.db.all('SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY id', [deliveryId])).map(attemptOf);
  }

  async listAttemptsBySubscription(subscriptionId: SubscriptionId, beforeId: number | null, limit: number): Promise<Attempt[]> {
    const rows = await this.db.all(
      'SELECT * FROM attempts WHERE subscription_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR id < $2) ORDER BY id DESC LIMIT $3',
      [subscriptionId, beforeId, limit],
    );
    return rows.map(attemptOf);
  }

  async retryNow(id: DeliveryId): Promise<Delivery | null | 'busy'> {
    return this.db.tx(async (t) => {
      const now = this.clock.now();
      const rows = await t.all(
        `SELECT d.*, s.paused AS sub_paused, s.deleted_at AS sub_deleted FROM deliveries d
         JOIN subscriptions s ON s.id = d.subscription_id WHERE d.id = $1`, [id],
      );
      const r = rows[0];
      if (!r) return null;
      if (r.sub_deleted !== null || r.sub_paused) return 'busy';
      if (deliveryOf(r, now).inFlight) return 'busy';
      await t.run(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, lease_token = NULL, updated_at = $2 WHERE id = $1",
        [id, now],
      );
      await this.notify(t);
      const after = await t.all('SELECT * FROM deliveries WHERE id = $1', [id]);
      return deliveryOf(after[0]!, now);
    });
  }

  // ---- dispatch ----
  // Claims, outcomes and releases go through `db.relaxed`: on PostgreSQL those commits do not
  // wait for the disk, since losing one in a server crash only makes a delivery due again,
  // which at-least-once allows. Publishing keeps the full guarantee.

  async claimDue(limit: number, leaseMs: number, room: ClaimRoom = { bySubscription: new Map(), otherwise: limit }): Promise<ClaimedDelivery[]> {
    const token = randomBytes(12).toString('base64url');
    const skip = [...room.bySubscription].filter(([, n]) => n <= 0).map(([id]) => id);
    const now = this.clock.now();
    const rows = this.engine === 'postgres'
      ? await this.claimInOneStatement(limit, now, now + leaseMs, token, skip, room)
      : await this.db.tx((t) => this.claimStepByStep(t, limit, now, now + leaseMs, token, skip, room));
    // A claim often holds many deliveries to one subscription: read its row once.
    const subs = new Map<string, Subscription>();
    return rows.map((r) => {
      let sub = subs.get(r.subscription_id);
      if (!sub) subs.set(r.subscription_id, (sub = subscriptionOf(r.sub)));
      return { delivery: deliveryOf(r, now), leaseToken: token, event: eventOf(r.ev), subscription: sub, tenantNumber: Number(r.tenant_number), failureStreak: Number(r.sub.failure_streak ?? 0) };
    });
  }

  /**
   * SQLite, one writer at a time: read a window of the oldest due deliveries, give each
   * subscription what it has room for, lease those, and load their events and subscriptions.
   */
  private async claimStepByStep(t: Db, limit: number, now: number, leaseEnd: number, token: string, skip: string[], room: ClaimRoom): Promise<Row[]> {
    const due = await t.all<{ id: string; subscription_id: string }>(
      `SELECT id, subscription_id FROM deliveries
       WHERE status = 'pending' AND next_attempt_at <= $1 AND NOT (${t.inList('subscription_id', 3)})
       ORDER BY next_attempt_at LIMIT $2`,
      // A window no wider than the claim: reading four times as many rows to fill the rooms of
      // partly busy subscriptions cost five times as much, on every claim.
      [now, limit, t.list(skip)],
    );
    const left = new Map(room.bySubscription);
    const ids: string[] = [];
    for (const d of due) {
      const r = left.get(d.subscription_id) ?? room.otherwise;
      if (r <= 0) continue;
      left.set(d.subscription_id, r - 1);
      ids.push(d.id);
      if (ids.length >= limit) break;
    }
    if (ids.length === 0) return [];
    const claimed = await t.all(
      `UPDATE deliveries SET next_attempt_at = $2, lease_token = $3, updated_at = $1 WHERE ${t.inList('id', 4)} RETURNING *`,
      [now, leaseEnd, token, t.list(ids)],
    );
    const events = new Map((await t.all(`SELECT * FROM events WHERE ${t.inList('id', 1)}`, [t.list([...new Set(claimed.map((r) => r.event_id as string))])])).map((r) => [r.id, r]));
    const subs = new Map((await t.all(
      `SELECT s.*, t.number AS tenant_number FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id WHERE ${t.inList('s.id', 1)}`,
      [t.list([...new Set(claimed.map((r) => r.subscription_id as string))])],
    )).map((r) => [r.id, r]));
    for (const r of claimed) {
      r.ev = events.get(r.event_id);
      r.sub = subs.get(r.subscription_id);
      r.tenant_number = r.sub.tenant_number;
    }
    return claimed;
  }

  /**
   * PostgreSQL, many claimers at once: the same steps in one statement, so one round trip.
   * SKIP LOCKED passes over rows another claimer is taking; each subscription gets the rows
   * ranked within its room.
   */
  private async claimInOneStatement(limit: number, now: number, leaseEnd: number, token: string, skip: string[], room: ClaimRoom): Promise<Row[]> {
    const subs = [...room.bySubscription.keys()];
    return this.db.relaxed.all(
      `WITH win AS (
         SELECT id, subscription_id, next_attempt_at FROM deliveries
         WHERE status = 'pending' AND next_attempt_at <= $1 AND NOT (subscription_id = ANY($3::text[]))
         ORDER BY next_attempt_at LIMIT $4
         FOR UPDATE SKIP LOCKED
       ), ranked AS (
         SELECT w.id, w.next_attempt_at, COALESCE(r.room, $5) AS room,
                ROW_NUMBER() OVER (PARTITION BY w.subscription_id ORDER BY w.next_attempt_at) AS rn
         FROM win w LEFT JOIN unnest($6::text[], $7::int[]) AS r(sub, room) ON r.sub = w.subscription_id
       ), picked AS (
         SELECT id FROM ranked WHERE rn <= room ORDER BY next_attempt_at LIMIT $2
       ), upd AS (
         UPDATE deliveries d SET next_attempt_at = $8, lease_token = $9, updated_at = $1 FROM picked WHERE d.id = picked.id RETURNING d.*
       )
       SELECT upd.*, row_to_json(e) AS ev, row_to_json(s) AS sub, t.number AS tenant_number
       FROM upd JOIN events e ON e.id = upd.event_id JOIN subscriptions s ON s.id = upd.subscription_id JOIN tenants t ON t.id = s.tenant_id`,
      // The window is no wider than the claim: each row in it is locked, and a lock is a write.
      [now, limit, skip, limit, room.otherwise, subs, subs.map((id) => room.bySubscription.get(id)!) as unknown as Param, leaseEnd, token],
    );
  }

  async complete(c: ClaimedDelivery, a: AttemptRecord, outcome: Outcome): Promise<boolean> {
    return (await this.completeMany([{ claim: c, attempt: a, outcome }]))[0]!;
  }

  async completeMany(items: Completion[]): Promise<boolean[]> {
    if (items.length === 0) return [];
    const streaks = streakWork(this.autoDisable, items);
    const followUp = streaks || items.some(({ outcome: o }) => o.kind === 'gone' || (o.kind === 'failed' && o.exhaustedStatus));
    const work = async (t: Db) => {
      const now = this.clock.now();
      const recorded = t.engine === 'postgres' ? await this.recordInOneStatement(t, items, now) : await this.recordEach(t, items, now);
      for (const [i, { claim, outcome }] of items.entries()) {
        if (!recorded[i]) continue;
        if (outcome.kind === 'failed' && outcome.exhaustedStatus) await this.markExhausted(t, claim, outcome.exhaustedStatus, now);
        if (outcome.kind === 'gone') await takeOutOfService(t, claim.subscription.id, OUT_OF_SERVICE[claim.subscription.dialect], now);
      }
      if (streaks && (await trackStreaks(t, items, recorded, now, this.autoDisable!)).length > 0) await this.notify(t);
      return recorded;
    };
    // One statement needs no transaction of its own; follow-up writes share one with it.
    const recorded = await (this.engine === 'postgres' && !followUp ? work(this.db.relaxed) : this.db.relaxed.tx(work));
    this.onAttemptsRecorded?.();
    return recorded;
  }

  /**
   * One statement pair per outcome; right for in-process SQLite. Every write checks the
   * lease. A retry's new state depends on its subscription, which may have been paused or
   * deleted while the attempt was in flight; a delivery cancelled meanwhile stays cancelled,
   * and its attempt is recorded all the same.
   */
  private async recordEach(t: Db, items: Completion[], now: number): Promise<boolean[]> {
    const out: boolean[] = [];
    for (const { claim: c, attempt: a, outcome } of items) {
      const changed = await t.run(
        `UPDATE deliveries SET attempts = attempts + 1, lease_token = NULL, next_attempt_at = $3, last_status_code = $4, last_error = $5, updated_at = $6,
           status = (SELECT ${nextStateSql('deliveries.status', 'CAST($7 AS TEXT)')} FROM subscriptions s WHERE s.id = deliveries.subscription_id)
         WHERE id = $1 AND lease_token = $2`,
        [c.delivery.id, c.leaseToken, outcome.kind === 'retry' ? outcome.at : null, a.statusCode, lastError(a), now, recordedKind(outcome)],
      );
      if (changed > 0) {
        await t.run(
          `INSERT INTO attempts (delivery_id, subscription_id, attempt_no, started_at, duration_ms, status_code, error_kind, error, response_body, worker, request_headers)
           VALUES ($1, $2, (SELECT attempts FROM deliveries WHERE id = $1), $3, $4, $5, $6, $7, $8, $9, $10)`,
          [c.delivery.id, c.subscription.id, a.startedAt, a.durationMs, a.statusCode, a.errorKind, a.error, a.responseBody, a.worker, headersJson(a)],
        );
      }
      out.push(changed > 0);
    }
    return out;
  }

  /** The same as recordEach for the whole batch in one PostgreSQL statement, over arrays. */
  private async recordInOneStatement(t: Db, items: Completion[], now: number): Promise<boolean[]> {
    const col = <T>(f: (x: Completion) => T) => items.map(f) as unknown as Param;
    const rows = await t.all<{ delivery_id: string }>(
      `WITH v AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
           AS v(id, token, kind, next_at, code, err, started_at, duration_ms, error_kind, error, response_body, worker, request_headers)
       ), upd AS (
         UPDATE deliveries d SET attempts = d.attempts + 1, lease_token = NULL, next_attempt_at = v.next_at, last_status_code = v.code,
           last_error = v.err, updated_at = $7, status = ${nextStateSql('d.status', 'v.kind')}
         FROM v, subscriptions s
         WHERE d.id = v.id AND d.lease_token = v.token AND s.id = d.subscription_id
         RETURNING d.id, d.attempts, d.subscription_id
       )
       INSERT INTO attempts (delivery_id, subscription_id, attempt_no, started_at, duration_ms, status_code, error_kind, error, response_body, worker, request_headers)
       SELECT upd.id, upd.subscription_id, upd.attempts, v.started_at, v.duration_ms, v.code, v.error_kind, v.error, v.response_body, v.worker, v.request_headers
       FROM upd JOIN v ON v.id = upd.id
       RETURNING delivery_id`,
      [col((x) => x.claim.delivery.id), col((x) => x.claim.leaseToken), col((x) => recordedKind(x.outcome)),
        col((x) => (x.outcome.kind === 'retry' ? x.outcome.at : null)), col((x) => x.attempt.statusCode), col((x) => lastError(x.attempt)), now,
        col((x) => x.attempt.startedAt), col((x) => x.attempt.durationMs), col((x) => x.attempt.errorKind), col((x) => x.attempt.error),
        col((x) => x.attempt.responseBody), col((x) => x.attempt.worker), col((x) => headersJson(x.attempt))],
    );
    const done = new Set(rows.map((r) => r.delivery_id));
    return items.map((x) => done.has(x.claim.delivery.id));
  }

  /** No success since the exhausted delivery was created: the subscription stops receiving. */
  private async markExhausted(t: Db, c: ClaimedDelivery, status: string, now: number): Promise<void> {
    const ok = await t.all(
      'SELECT 1 AS ok FROM attempts WHERE subscription_id = $1 AND started_at >= $2 AND status_code >= 200 AND status_code < 300 LIMIT 1',
      [c.subscription.id, c.delivery.createdAt],
    );
    if (ok.length > 0) return;
    // What waited is held, not cancelled: re-verifying the subscription sends it.
    await takeOutOfService(t, c.subscription.id, { status, stopsNewDeliveries: true }, now);
  }

  async release(c: ClaimedDelivery, at: number): Promise<void> {
    await this.db.relaxed.run('UPDATE deliveries SET lease_token = NULL, next_attempt_at = $3 WHERE id = $1 AND lease_token = $2', [c.delivery.id, c.leaseToken, at]);
  }

  async nextDueAt(): Promise<number | null> {
    const rows = await this.db.all<{ at: number | null }>("SELECT MIN(next_attempt_at) AS at FROM deliveries WHERE status = 'pending'");
    const at = rows[0]?.at;
    return at === null || at === undefined ? null : Number(at);
  }
}
