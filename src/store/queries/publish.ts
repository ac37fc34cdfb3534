// Publishing: events and their deliveries to every matching subscription, atomically.
// Deliveries to subscriptions with ordering 'entity' join their entity's line (migration 006).
import { subscriptionMatches } from '../../domain/eventTypes.ts';
import { UnknownTenantError } from '../../domain/errors.ts';
import { uuidv7, type EventId } from '../../domain/ids.ts';
import type { HeraldEvent, NewEvent, PublishResult } from '../../domain/model.ts';
import { insertMany, type Db, type Param } from '../db.ts';
import { EVENT_COLUMNS, eventOf, json } from '../rows.ts';
import type { StoreContext } from './context.ts';
import { orderKey, promoteHeads, type Line } from './lines.ts';

export async function publish(ctx: StoreContext, events: NewEvent[]): Promise<PublishResult[]> {
  if (ctx.db.engine === 'postgres' && events.length === 1) {
    const one = await publishOneAtOnce(ctx, events[0]!);
    if (one) return [one];
  }
  const parked: Line[] = [];
  let results: PublishResult[];
  try {
    results = await publishOnce(ctx, events, parked);
  } catch (err) {
    // Two concurrent publishes with one idempotency key: the loser retries and finds the winner's event.
    // 40P01: a bulk re-send of several entities' deliveries took their lines' locks in
    // another order than this publish (rare); PostgreSQL ended this one.
    const code = (err as { code?: string }).code;
    if (code !== '23505' && code !== '40P01') throw err;
    parked.length = 0;
    results = await publishOnce(ctx, events, parked);
  }
  if (parked.length > 0) await promoteHeads(ctx.db, parked, ctx.clock.now());
  return results;
}

/** A tenant's live subscriptions, read with the tenant: no row at all, no tenant. */
const TENANT_AND_SUBSCRIPTIONS = `SELECT t.id AS tenant, s.id, s.filters, s.paused, s.ordering FROM tenants t
  LEFT JOIN subscriptions s ON s.tenant_id = t.id AND s.deleted_at IS NULL AND s.enabled = TRUE
  WHERE t.id = $1 ORDER BY s.id`;

interface LiveSubscription { id: string; filters: string[]; paused: boolean; ordered: boolean }

const liveSubscriptions = (rows: Record<string, any>[]): LiveSubscription[] =>
  rows.filter((r) => r.id !== null).map((r) => ({ id: r.id as string, filters: JSON.parse(r.filters as string) as string[], paused: Boolean(r.paused), ordered: r.ordering === 'entity' }));

/** An event's row in the order of EVENT_COLUMNS (created_at, the 11th, is also its deliveries' times). */
const eventRow = (ev: HeraldEvent): Param[] =>
  [ev.id, ev.tenantId, ev.entity, ev.event, ev.entityId, ev.entityUri, ev.parentType, ev.parentId, json(ev.data), ev.occurredAt, ev.createdAt, ev.idempotencyKey];

/** The event and its deliveries in one statement, atomic without a transaction of its own. */
const EVENT_AND_DELIVERIES = `WITH ev AS (
    INSERT INTO events (${EVENT_COLUMNS.join(', ')})
    VALUES (${EVENT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id
  )
  INSERT INTO deliveries (id, tenant_id, event_id, subscription_id, status, next_attempt_at, created_at, updated_at)
  SELECT d.id, $2, ev.id, d.sub, d.status, $11, $11, $11 FROM ev, unnest($13::text[], $14::text[], $15::text[]) AS d(id, sub, status)`;

/**
 * PostgreSQL, one event (what single publishes are): two statements and no BEGIN or COMMIT,
 * where the general path takes five round trips. Under 500 single publishes a second on two
 * cores each round trip waited for a busy event loop and server, and requests queued in front
 * of the store. The subscriptions are read in their own statement, as READ COMMITTED would
 * read them inside a transaction too. Answers null, having written nothing, where the
 * general path must do it: a subscription with ordered delivery (its lines take locks in a
 * transaction), or a race it lost (an idempotency key stored meanwhile, a tenant or
 * subscription deleted meanwhile), which the general path answers.
 */
async function publishOneAtOnce(ctx: StoreContext, e: NewEvent): Promise<PublishResult | null> {
  const db = ctx.db;
  const rows = await db.all(TENANT_AND_SUBSCRIPTIONS, [e.tenantId], { prepared: true });
  if (rows.length === 0) throw new UnknownTenantError(e.tenantId, 0);
  const subs = liveSubscriptions(rows).filter((s) => subscriptionMatches(s.filters, e.entity, e.event));
  if (subs.some((s) => s.ordered)) return null;
  if (e.idempotencyKey !== null) {
    const [stored] = await findByIdempotencyKeys(db, e.tenantId, [e.idempotencyKey]);
    if (stored) return stored;
  }
  const now = ctx.clock.now();
  const ev: HeraldEvent = { ...e, id: uuidv7(now) as EventId, createdAt: now };
  try {
    await db.run(EVENT_AND_DELIVERIES, [
      ...eventRow(ev),
      subs.map(() => uuidv7(now)), subs.map((s) => s.id), subs.map((s) => (s.paused ? 'held' : 'pending')),
    ], { prepared: true });
  } catch (err) {
    const code = (err as { code?: string }).code;
    // 23505: the key was stored meanwhile; 23503: the tenant or a subscription went meanwhile.
    if (code === '23505' || code === '23503') return null;
    throw err;
  }
  if (subs.some((s) => !s.paused)) await ctx.notifyDue(db);
  return { event: ev, deliveries: subs.length, duplicate: false };
}

async function publishOnce(ctx: StoreContext, events: NewEvent[], parked: Line[]): Promise<PublishResult[]> {
  return ctx.db.tx(async (t) => {
    const now = ctx.clock.now();
    const results: PublishResult[] = [];
    const subsByTenant = new Map<string, LiveSubscription[]>();
    const byKey = new Map<string, PublishResult>();
    // Each tenant's idempotency keys in this batch, looked up in one statement when the tenant is
    // first met (one lookup an event made a 500-event batch with keys half as fast as one without).
    const keysByTenant = new Map<string, Set<string>>();
    for (const e of events) {
      if (e.idempotencyKey === null) continue;
      let keys = keysByTenant.get(e.tenantId);
      if (!keys) keysByTenant.set(e.tenantId, (keys = new Set()));
      keys.add(e.idempotencyKey);
    }
    const stored = new Map<string, PublishResult>();
    const eventRows: Param[][] = [];
    const deliveryRows: Param[][] = [];
    /** Deliveries that join an entity's line: their row, and the line (subscription, key). */
    const inLine: { row: Param[]; sub: string; key: string }[] = [];
    let due = false;

    for (const [index, e] of events.entries()) {
      let subs = subsByTenant.get(e.tenantId);
      if (!subs) {
        // The tenant and its subscriptions in one round trip: no row, no tenant.
        const rows = await t.all(TENANT_AND_SUBSCRIPTIONS, [e.tenantId], { prepared: true });
        if (rows.length === 0) throw new UnknownTenantError(e.tenantId, index);
        subs = liveSubscriptions(rows);
        subsByTenant.set(e.tenantId, subs);
        const keys = keysByTenant.get(e.tenantId);
        if (keys) for (const r of await findByIdempotencyKeys(t, e.tenantId, [...keys])) stored.set(`${e.tenantId}\u0000${r.event.idempotencyKey}`, r);
      }
      if (e.idempotencyKey !== null) {
        const mapKey = `${e.tenantId}\u0000${e.idempotencyKey}`;
        const seen = byKey.get(mapKey) ?? stored.get(mapKey);
        if (seen) {
          const dup = { ...seen, duplicate: true };
          results.push(dup);
          byKey.set(mapKey, dup);
          continue;
        }
      }
      const ev: HeraldEvent = { ...e, id: uuidv7(now) as EventId, createdAt: now };
      eventRows.push(eventRow(ev));
      let n = 0;
      for (const s of subs) {
        if (!subscriptionMatches(s.filters, e.entity, e.event)) continue;
        const row: Param[] = [uuidv7(now), ev.tenantId, ev.id, s.id, s.paused ? 'held' : 'pending', now, now, now, null, null];
        deliveryRows.push(row);
        if (s.ordered) inLine.push({ row, sub: s.id, key: orderKey(e.entity, e.entityId) });
        if (!s.paused) due = true;
        n++;
      }
      const r: PublishResult = { event: ev, deliveries: n, duplicate: false };
      results.push(r);
      if (e.idempotencyKey !== null) byKey.set(`${e.tenantId}\u0000${e.idempotencyKey}`, r);
    }
    await insertMany(t, 'events', EVENT_COLUMNS, eventRows, { prepared: true });
    if (inLine.length > 0) parked.push(...(await lineUp(t, inLine)));
    await insertMany(t, 'deliveries', ['id', 'tenant_id', 'event_id', 'subscription_id', 'status', 'next_attempt_at', 'created_at', 'updated_at', 'order_key', 'order_seq'], deliveryRows, { prepared: true });
    if (due) await ctx.notifyDue(t);
    return results;
  });
}

/** The events already stored under any of `keys` for the tenant, each with its number of deliveries. */
async function findByIdempotencyKeys(t: Db, tenantId: string, keys: string[]): Promise<PublishResult[]> {
  const rows = await t.all(
    `SELECT e.*, (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) AS herald_deliveries
     FROM events e WHERE e.tenant_id = $1 AND ${t.inList('e.idempotency_key', 2)}`,
    [tenantId, t.list(keys)],
  );
  return rows.map((r) => ({ event: eventOf(r), deliveries: Number(r.herald_deliveries), duplicate: true }));
}

/** The last place taken in a line, among its unfinished deliveries (through the index deliveries_order). */
const TAIL = (sub: string, key: string) => `SELECT MAX(order_seq) FROM deliveries WHERE subscription_id = ${sub} AND order_key = ${key} AND status IN ('pending', 'held')`;

/**
 * Gives each new delivery of an ordered subscription its place at the end of its entity's
 * line, in the order the events came in: the first of a line with nothing unfinished is due
 * now, the rest wait (next_attempt_at NULL) until the one before them is finished, when the
 * trigger of migration 006 makes the next one due. On PostgreSQL the lines' locks (256 shared
 * by all lines) are taken first, in one order (so two publishes cannot wait for each other), and
 * held until this transaction commits: of two publishes to one entity, the one that commits
 * first is first in line. On SQLite one writer at a time gives the same. Answers the lines where a delivery was parked,
 * for the check after the commit (lines.ts).
 */
async function lineUp(t: Db, inLine: { row: Param[]; sub: string; key: string }[]): Promise<Line[]> {
  const lines = new Map<string, { sub: string; key: string; tail: number | null }>();
  for (const d of inLine) lines.set(`${d.sub}\u0000${d.key}`, { sub: d.sub, key: d.key, tail: null });
  const all = [...lines.values()];
  if (t.engine === 'postgres') {
    await t.all(
      `SELECT herald_order_lock_bucket(b) FROM (
         SELECT DISTINCT herald_order_bucket(s, k) AS b FROM unnest($1::text[], $2::text[]) AS u(s, k) ORDER BY b
       ) o`,
      [all.map((l) => l.sub), all.map((l) => l.key)],
    );
    // A statement after the locks: its snapshot holds what the lines' previous holders committed.
    const rows = await t.all<{ s: string; k: string; tail: string | number | null }>(
      `SELECT u.s, u.k, (${TAIL('u.s', 'u.k')}) AS tail FROM unnest($1::text[], $2::text[]) AS u(s, k)`,
      [all.map((l) => l.sub), all.map((l) => l.key)],
    );
    for (const r of rows) lines.get(`${r.s}\u0000${r.k}`)!.tail = r.tail === null ? null : Number(r.tail);
  } else {
    for (const l of all) {
      const rows = await t.all<{ tail: number | null }>(`SELECT (${TAIL('$1', '$2')}) AS tail`, [l.sub, l.key]);
      l.tail = rows[0]?.tail === null || rows[0]?.tail === undefined ? null : Number(rows[0].tail);
    }
  }
  const parked = new Set<{ sub: string; key: string; tail: number | null }>();
  for (const d of inLine) {
    const l = lines.get(`${d.sub}\u0000${d.key}`)!;
    const place = (l.tail ?? 0) + 1;
    // Columns: ..., next_attempt_at (5), ..., order_key (8), order_seq (9).
    if (l.tail !== null) {
      d.row[5] = null;
      parked.add(l);
    }
    d.row[8] = d.key;
    d.row[9] = place;
    l.tail = place;
  }
  return [...parked].map(({ sub, key }) => ({ sub, key }));
}
