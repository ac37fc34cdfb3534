// The catalog of event types.
import type { EventType } from '../../domain/eventTypes.ts';
import type { StoreContext } from './context.ts';

export async function listEventTypes(ctx: StoreContext): Promise<EventType[]> {
  return ctx.db.all<EventType>('SELECT entity, event, description FROM event_types ORDER BY entity, event');
}

export async function putEventType(ctx: StoreContext, e: EventType): Promise<boolean> {
  return ctx.db.tx(async (t) => {
    const changed = await t.run('UPDATE event_types SET description = $3 WHERE entity = $1 AND event = $2', [e.entity, e.event, e.description]);
    if (changed > 0) return false;
    await t.run('INSERT INTO event_types (entity, event, description, created_at) VALUES ($1, $2, $3, $4)', [e.entity, e.event, e.description, Date.now()]);
    return true;
  });
}

export async function seedEventTypes(ctx: StoreContext, types: readonly EventType[]): Promise<void> {
  const now = Date.now();
  await ctx.db.tx(async (t) => {
    for (const e of types) {
      await t.run('INSERT INTO event_types (entity, event, description, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [e.entity, e.event, e.description, now]);
    }
  });
}
