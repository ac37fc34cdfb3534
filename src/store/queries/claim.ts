// Claiming due deliveries under a lease, each subscription no more than it has room for.
import { randomBytes } from 'node:crypto';
import type { ClaimedDelivery, Subscription } from '../../domain/model.ts';
import type { Db, Param } from '../db.ts';
import { deliveryOf, EVENT_COLUMNS, eventOf, subscriptionOf, type Row } from '../rows.ts';
import type { ClaimOptions, ClaimRoom } from '../store.ts';
import type { StoreContext } from './context.ts';

/**
 * Where the last claim that left subscriptions out found its first due delivery of another:
 * every due row before `at` was theirs. A claim that leaves out at least the same ones starts
 * its window there rather than reading past their whole due backlog again (about 0.1 µs a
 * row: 12.5 ms a claim behind 100,000 on SQLite). `at` stays CURSOR_MARGIN_MS behind the
 * claim's clock, for a publish committed late or made on a clock a little behind; a row due
 * before it anyway waits for the next claim that takes those subscriptions again, at their
 * next refill. Per store, so per process.
 */
interface SkipCursor { skip: Set<string>; at: number }
const cursors = new WeakMap<StoreContext, SkipCursor>();
const CURSOR_MARGIN_MS = 5000;

/** The window's lower bound for a claim that leaves `skip` out, or null for none. */
function cursorFor(ctx: StoreContext, skip: string[], now: number): number | null {
  const c = cursors.get(ctx);
  if (!c || skip.length === 0) return null;
  // A clock that stepped back: the bound may be ahead of rows due now.
  if (c.at > now - CURSOR_MARGIN_MS) return null;
  const leftOut = new Set(skip);
  for (const id of c.skip) if (!leftOut.has(id)) return null;
  return c.at;
}

export async function claimDue(ctx: StoreContext, limit: number, leaseMs: number, room: ClaimRoom = { bySubscription: new Map(), otherwise: limit }, options: ClaimOptions = {}): Promise<ClaimedDelivery[]> {
  const token = randomBytes(12).toString('base64url');
  const skip = [...room.bySubscription].filter(([, n]) => n <= 0).map(([id]) => id);
  const now = ctx.clock.now();
  // Run-out leases are taken over only up to the cutoff; without one the statements stay as
  // they were (on SQLite, the due index alone answers them).
  const cutoff = options.leaseCutoff !== undefined && options.leaseCutoff < now ? Math.floor(options.leaseCutoff) : null;
  const from = cutoff === null ? cursorFor(ctx, skip, now) : null;
  const { rows, firstDue } = ctx.db.engine === 'postgres'
    ? await claimInOneStatement(ctx, limit, now, now + leaseMs, token, skip, room, cutoff, from)
    : await ctx.db.tx((t) => claimStepByStep(t, limit, now, now + leaseMs, token, skip, room, cutoff, from));
  if (skip.length > 0 && cutoff === null) cursors.set(ctx, { skip: new Set(skip), at: Math.min(firstDue ?? now, now - CURSOR_MARGIN_MS) });
  else cursors.delete(ctx);
  // A claim often holds many deliveries to one subscription: read its row once (on
  // PostgreSQL it comes only with the first of them).
  const subs = new Map<string, { sub: Subscription; streak: number }>();
  for (const r of rows) if (r.sub && !subs.has(r.subscription_id)) subs.set(r.subscription_id, { sub: subscriptionOf(r.sub), streak: Number(r.sub.failure_streak ?? 0) });
  return rows.map((r) => {
    const { sub, streak } = subs.get(r.subscription_id)!;
    return { delivery: deliveryOf(r, now), leaseToken: token, event: eventOf(r.ev ?? eventColumns(r)), subscription: sub, tenantNumber: Number(r.tenant_number), failureStreak: streak };
  });
}

/** The event's columns as a PostgreSQL claim returns them beside the delivery's, prefixed `ev_`. */
const eventColumns = (r: Row): Row => Object.fromEntries(EVENT_COLUMNS.map((c) => [c, r[`ev_${c}`]]));

/**
 * What a PostgreSQL claim returns beside the delivery's columns (`d`: the claimed rows): the
 * event (`e`) as plain columns, not as JSON (which escaped and unescaped its whole body once
 * more for each delivery), and the subscription (`s`) with the first of its deliveries only.
 * Shared with bench/pgcycle.ts, which runs the claim on schema variants.
 */
export const claimedEventAndSubscription = (d: string): string => `${EVENT_COLUMNS.map((c) => `e.${c} AS ev_${c}`).join(', ')},
       CASE WHEN ROW_NUMBER() OVER (PARTITION BY ${d}.subscription_id) = 1 THEN row_to_json(s) END AS sub`;

/**
 * Ordered subscriptions (migration 006): a delivery in an entity's line is taken only when
 * nothing before it in the line is unfinished. Those behind the head normally wait out of
 * the claim's reach (next_attempt_at NULL), so this is the last guard rather than the filter
 * that does the work; a delivery of no line (order_key NULL) passes at once.
 */
const FIRST_IN_LINE = (d: string) => `(${d}.order_key IS NULL OR NOT EXISTS (
  SELECT 1 FROM deliveries p WHERE p.subscription_id = ${d}.subscription_id AND p.order_key = ${d}.order_key
    AND p.status IN ('pending', 'held') AND p.order_seq < ${d}.order_seq))`;

/**
 * SQLite: deliveries the window offered but that are not first in their line (made due by
 * something that skipped the triggers) go back to waiting, so that they do not fill every
 * later window; the trigger makes each due when the one before it finishes. One writer at a
 * time, so nothing can finish between the check and this.
 */
async function waitInLine(t: Db, ids: string[], claimed: Row[]): Promise<void> {
  const taken = new Set(claimed.map((r) => r.id as string));
  const left = ids.filter((id) => !taken.has(id));
  await t.run(`UPDATE deliveries SET next_attempt_at = NULL WHERE ${t.inList('id', 1)} AND NOT ${FIRST_IN_LINE('deliveries')}`, [t.list(left)]);
}

/**
 * SQLite, one writer at a time: read a window of the oldest due deliveries, give each
 * subscription what it has room for, lease those, and load their events and subscriptions.
 */
async function claimStepByStep(t: Db, limit: number, now: number, leaseEnd: number, token: string, skip: string[], room: ClaimRoom, cutoff: number | null, from: number | null): Promise<Claimed> {
  const due = await t.all<{ id: string; subscription_id: string; next_attempt_at: number }>(
    `SELECT id, subscription_id, next_attempt_at FROM deliveries
     WHERE status = 'pending' AND next_attempt_at <= $1 AND NOT (${t.inList('subscription_id', 3)})${cutoff === null ? '' : ' AND (lease_token IS NULL OR next_attempt_at <= $4)'}${from === null ? '' : ' AND next_attempt_at >= $4'}
     ORDER BY next_attempt_at LIMIT $2`,
    // A window no wider than the claim: reading four times as many rows to fill the rooms of
    // partly busy subscriptions cost five times as much, on every claim.
    [now, limit, t.list(skip), ...(cutoff === null ? [] : [cutoff]), ...(from === null ? [] : [from])],
  );
  const firstDue = due.length > 0 ? Number(due[0]!.next_attempt_at) : null;
  const left = new Map(room.bySubscription);
  const ids: string[] = [];
  for (const d of due) {
    const r = left.get(d.subscription_id) ?? room.otherwise;
    if (r <= 0) continue;
    left.set(d.subscription_id, r - 1);
    ids.push(d.id);
    if (ids.length >= limit) break;
  }
  if (ids.length === 0) return { rows: [], firstDue };
  // The line check is made here rather than in the window, which the due index alone answers.
  const claimed = await t.all(
    `UPDATE deliveries SET next_attempt_at = $2, lease_token = $3, updated_at = $1 WHERE ${t.inList('id', 4)} AND ${FIRST_IN_LINE('deliveries')} RETURNING *`,
    [now, leaseEnd, token, t.list(ids)],
  );
  if (claimed.length < ids.length) await waitInLine(t, ids, claimed);
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
  return { rows: claimed, firstDue };
}

/** A claim's rows, and when the first row of its window was due (null: the window was empty). */
interface Claimed { rows: Row[]; firstDue: number | null }

/**
 * The delivery columns a claim reads (rows.ts deliveryOf), named: the claim is a prepared
 * statement, and a `*` would fail it on every connection once a migration adds a column.
 */
const CLAIMED_COLUMNS = (d: string) => ['id', 'tenant_id', 'event_id', 'subscription_id', 'status', 'attempts', 'throttled', 'next_attempt_at', 'lease_token', 'last_status_code', 'last_error', 'created_at', 'updated_at']
  .map((c) => `${d}.${c}`).join(', ');

/**
 * PostgreSQL, many claimers at once: the same steps in one statement, so one round trip.
 * SKIP LOCKED passes over rows another claimer is taking; each subscription gets the rows
 * ranked within its room.
 */
async function claimInOneStatement(ctx: StoreContext, limit: number, now: number, leaseEnd: number, token: string, skip: string[], room: ClaimRoom, cutoff: number | null, from: number | null): Promise<Claimed> {
  const subs = [...room.bySubscription.keys()];
  const rows = await ctx.db.relaxed.all(
    `WITH win AS (
       SELECT id, subscription_id, next_attempt_at FROM deliveries
       WHERE status = 'pending' AND next_attempt_at <= $1 AND NOT (subscription_id = ANY($3::text[]))${cutoff === null ? '' : ' AND (lease_token IS NULL OR next_attempt_at <= $10)'}${from === null ? '' : ' AND next_attempt_at >= $10'}
         AND ${FIRST_IN_LINE('deliveries')}
       ORDER BY next_attempt_at LIMIT $4
       FOR UPDATE SKIP LOCKED
     ), ranked AS (
       SELECT w.id, w.next_attempt_at, COALESCE(r.room, $5) AS room,
              ROW_NUMBER() OVER (PARTITION BY w.subscription_id ORDER BY w.next_attempt_at) AS rn
       FROM win w LEFT JOIN unnest($6::text[], $7::int[]) AS r(sub, room) ON r.sub = w.subscription_id
     ), picked AS (
       SELECT id, next_attempt_at FROM ranked WHERE rn <= room ORDER BY next_attempt_at LIMIT $2
     ), upd AS (
       UPDATE deliveries d SET next_attempt_at = $8, lease_token = $9, updated_at = $1 FROM picked WHERE d.id = picked.id
       RETURNING ${CLAIMED_COLUMNS('d')}, picked.next_attempt_at AS due_at
     )
     SELECT ${CLAIMED_COLUMNS('upd')}, upd.due_at, ${claimedEventAndSubscription('upd')}, t.number AS tenant_number
     FROM upd JOIN events e ON e.id = upd.event_id JOIN subscriptions s ON s.id = upd.subscription_id JOIN tenants t ON t.id = s.tenant_id`,
    // The window is no wider than the claim: each row in it is locked, and a lock is a write.
    [now, limit, skip, limit, room.otherwise, subs, subs.map((id) => room.bySubscription.get(id)!) as unknown as Param, leaseEnd, token,
      ...(cutoff === null ? [] : [cutoff]), ...(from === null ? [] : [from])],
    { prepared: true },
  );
  // Every subscription in the window has room (the full ones are left out of it), so its
  // earliest row is picked: the earliest picked is the window's first.
  const firstDue = rows.length > 0 ? Math.min(...rows.map((r) => Number(r.due_at))) : null;
  return { rows, firstDue };
}

export async function nextDueAt(ctx: StoreContext): Promise<number | null> {
  const rows = await ctx.db.all<{ at: number | null }>("SELECT MIN(next_attempt_at) AS at FROM deliveries WHERE status = 'pending'", [], { prepared: true });
  const at = rows[0]?.at;
  return at === null || at === undefined ? null : Number(at);
}
