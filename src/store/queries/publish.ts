// Publishing: events and their deliveries to every matching subscription, in one transaction.
import { subscriptionMatches } from '../../domain/eventTypes.ts';
import { UnprocessableError } from '../../domain/errors.ts';
import { uuidv7, type EventId } from '../../domain/ids.ts';
import type { HeraldEvent, NewEvent, PublishResult } from '../../domain/model.ts';
import { insertMany, type Db, type Param } from '../db.ts';
import { eventOf, json } from '../rows.ts';
import type { StoreContext } from './context.ts';

export async function publish(ctx: StoreContext, events: NewEvent[]): Promise<PublishResult[]> {
  try {
    return await publishOnce(ctx, events);
  } catch (err) {
    // Two concurrent publishes with one idempotency key: the loser retries and finds the winner's event.
    if ((err as { code?: string }).code === '23505') return publishOnce(ctx, events);
    throw err;
  }
}

async function publishOnce(ctx: StoreContext, events: NewEvent[]): Promise<PublishResult[]> {
  return ctx.db.tx(async (t) => {
    const now = ctx.clock.now();
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
        const seen = byKey.get(mapKey) ?? (await findByIdempotencyKey(t, e.tenantId, e.idempotencyKey));
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
    if (due) await ctx.notifyDue(t);
    return results;
  });
}

async function findByIdempotencyKey(t: Db, tenantId: string, key: string): Promise<PublishResult | null> {
  const rows = await t.all('SELECT * FROM events WHERE tenant_id = $1 AND idempotency_key = $2', [tenantId, key]);
  if (!rows[0]) return null;
  const count = await t.all<{ n: number }>('SELECT COUNT(*) AS n FROM deliveries WHERE event_id = $1', [rows[0].id]);
  return { event: eventOf(rows[0]), deliveries: Number(count[0]!.n), duplicate: true };
}
