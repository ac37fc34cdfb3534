// Subscriptions: create, read, change, pause and resume, delete; and the notices queued to one.
import { uuidv7, type SubscriptionId, type TenantId } from '../../domain/ids.ts';
import type { NewSubscription, Subscription, SubscriptionPatch } from '../../domain/model.ts';
import { NOTICE_ENTITY } from '../../domain/notices.ts';
import type { Dialect } from '../../domain/states.ts';
import type { Db } from '../db.ts';
import { json, subscriptionOf } from '../rows.ts';
import { resetStreak } from './autoDisable.ts';
import type { StoreContext } from './context.ts';

export async function createSubscription(ctx: StoreContext, s: NewSubscription, notice?: string): Promise<Subscription> {
  const now = ctx.clock.now();
  return ctx.db.tx(async (t) => {
    const rows = await t.all(
      `INSERT INTO subscriptions (id, tenant_id, dialect, url, description, filters, paused, enabled, status, secrets, headers, properties, created_at, updated_at, ordering)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14) RETURNING *`,
      [uuidv7(now), s.tenantId, s.dialect, s.url, s.description, json(s.filters), s.paused, s.enabled, s.status, json(s.secrets), json(s.headers), json(s.properties), now, s.ordering ?? 'none'],
    );
    const sub = subscriptionOf(rows[0]!);
    if (notice) await queueNotice(ctx, t, sub.tenantId, sub.id, notice, now);
    return sub;
  });
}

export async function sendNotice(ctx: StoreContext, tenantId: TenantId, id: SubscriptionId, notice: string): Promise<boolean> {
  return ctx.db.tx(async (t) => {
    const rows = await t.all('SELECT id FROM subscriptions WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL', [id, tenantId]);
    if (rows.length === 0) return false;
    await queueNotice(ctx, t, tenantId, id, notice, ctx.clock.now());
    return true;
  });
}

async function queueNotice(ctx: StoreContext, t: Db, tenantId: string, subscriptionId: string, notice: string, now: number): Promise<void> {
  const eventId = uuidv7(now);
  await t.run(
    `INSERT INTO events (id, tenant_id, entity, event, entity_id, data, occurred_at, created_at) VALUES ($1, $2, $3, $4, $5, '{}', $6, $6)`,
    [eventId, tenantId, NOTICE_ENTITY, notice, subscriptionId, now],
  );
  await t.run(
    `INSERT INTO deliveries (id, tenant_id, event_id, subscription_id, status, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $5, $5)`,
    [uuidv7(now), tenantId, eventId, subscriptionId, now],
  );
  await ctx.notifyDue(t);
}

export async function getSubscription(ctx: StoreContext, tenantId: TenantId, id: string, dialect?: Dialect): Promise<Subscription | null> {
  const rows = await ctx.db.all(
    'SELECT * FROM subscriptions WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL AND (CAST($3 AS TEXT) IS NULL OR dialect = $3)',
    [id, tenantId, dialect ?? null],
  );
  return rows[0] ? subscriptionOf(rows[0]) : null;
}

export async function listSubscriptions(ctx: StoreContext, tenantId: TenantId, dialect: Dialect): Promise<Subscription[]> {
  const rows = await ctx.db.all(
    'SELECT * FROM subscriptions WHERE tenant_id = $1 AND dialect = $2 AND deleted_at IS NULL ORDER BY id', [tenantId, dialect],
  );
  return rows.map(subscriptionOf);
}

export async function updateSubscription(ctx: StoreContext, tenantId: TenantId, id: SubscriptionId, patch: SubscriptionPatch): Promise<Subscription | null> {
  return ctx.db.tx(async (t) => {
    const rows = await t.all('SELECT * FROM subscriptions WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL', [id, tenantId]);
    if (!rows[0]) return null;
    const old = subscriptionOf(rows[0]);
    const s: Subscription = { ...old, ...patch, updatedAt: ctx.clock.now() };
    await t.run(
      `UPDATE subscriptions SET url = $2, description = $3, filters = $4, paused = $5, enabled = $6, status = $7,
         secrets = $8, headers = $9, properties = $10, updated_at = $11, ordering = $12 WHERE id = $1`,
      [id, s.url, s.description, json(s.filters), s.paused, s.enabled, s.status, json(s.secrets), json(s.headers), json(s.properties), s.updatedAt, s.ordering],
    );
    if (s.paused && !old.paused) await holdWaiting(t, id, s.updatedAt);
    if (!s.paused && old.paused) await releaseHeld(ctx, t, id, s.updatedAt);
    return s;
  });
}

/** Waiting deliveries of a paused subscription are held; one in flight finishes and then sees the pause. */
async function holdWaiting(t: Db, id: SubscriptionId, now: number): Promise<void> {
  await t.run("UPDATE deliveries SET status = 'held', updated_at = $2 WHERE subscription_id = $1 AND status = 'pending'", [id, now]);
}

async function releaseHeld(ctx: StoreContext, t: Db, id: SubscriptionId, now: number): Promise<void> {
  await resetStreak(t, id);
  const n = await t.run(
    `UPDATE deliveries SET status = 'pending', updated_at = $2,
       next_attempt_at = CASE WHEN lease_token IS NULL THEN $2 ELSE next_attempt_at END
     WHERE subscription_id = $1 AND status = 'held'`,
    [id, now],
  );
  if (n > 0) await ctx.notifyDue(t);
}

export async function deleteSubscription(ctx: StoreContext, tenantId: TenantId, id: SubscriptionId): Promise<boolean> {
  return ctx.db.tx(async (t) => {
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
