// Reading deliveries and their attempts, and making one due again by hand.
import type { DeliveryId, SubscriptionId, TenantId } from '../../domain/ids.ts';
import type { Attempt, Delivery, DeliveryFilter, LastAttempt } from '../../domain/model.ts';
import type { Dialect } from '../../domain/states.ts';
import { attemptOf, deliveryOf } from '../rows.ts';
import type { StoreContext } from './context.ts';

export async function lastAttempt(ctx: StoreContext, tenantId: TenantId, dialect: Dialect): Promise<LastAttempt | null> {
  const rows = await ctx.db.all(
    `SELECT a.status_code, a.started_at FROM attempts a JOIN subscriptions s ON s.id = a.subscription_id
     WHERE s.tenant_id = $1 AND s.dialect = $2 ORDER BY a.id DESC LIMIT 1`,
    [tenantId, dialect],
  );
  const r = rows[0];
  return r ? { statusCode: r.status_code === null ? null : Number(r.status_code), startedAt: Number(r.started_at) } : null;
}

export async function listDeliveries(ctx: StoreContext, f: DeliveryFilter): Promise<Delivery[]> {
  const rows = await ctx.db.all(
    `SELECT * FROM deliveries
     WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) AND (CAST($2 AS TEXT) IS NULL OR subscription_id = $2)
       AND (CAST($3 AS TEXT) IS NULL OR event_id = $3) AND (CAST($4 AS TEXT) IS NULL OR status = $4)
       AND (CAST($5 AS TEXT) IS NULL OR id < $5)
     ORDER BY id DESC LIMIT $6`,
    [f.tenantId ?? null, f.subscriptionId ?? null, f.eventId ?? null, f.status ?? null, f.before ?? null, f.limit],
  );
  const now = ctx.clock.now();
  return rows.map((r) => deliveryOf(r, now));
}

export async function getDelivery(ctx: StoreContext, id: string): Promise<Delivery | null> {
  const rows = await ctx.db.all('SELECT * FROM deliveries WHERE id = $1', [id]);
  return rows[0] ? deliveryOf(rows[0], ctx.clock.now()) : null;
}

export async function listAttempts(ctx: StoreContext, deliveryId: DeliveryId): Promise<Attempt[]> {
  return (await ctx.db.all('SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY id', [deliveryId])).map(attemptOf);
}

export async function listAttemptsBySubscription(ctx: StoreContext, subscriptionId: SubscriptionId, beforeId: number | null, limit: number): Promise<Attempt[]> {
  const rows = await ctx.db.all(
    'SELECT * FROM attempts WHERE subscription_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR id < $2) ORDER BY id DESC LIMIT $3',
    [subscriptionId, beforeId, limit],
  );
  return rows.map(attemptOf);
}

export async function retryNow(ctx: StoreContext, id: DeliveryId): Promise<Delivery | null | 'busy'> {
  return ctx.db.tx(async (t) => {
    const now = ctx.clock.now();
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
    await ctx.notifyDue(t);
    const after = await t.all('SELECT * FROM deliveries WHERE id = $1', [id]);
    return deliveryOf(after[0]!, now);
  });
}
