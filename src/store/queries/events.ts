// Reading published events.
import type { HeraldEvent, EventFilter } from '../../domain/model.ts';
import { NOTICE_ENTITY } from '../../domain/notices.ts';
import { eventOf } from '../rows.ts';
import type { StoreContext } from './context.ts';
import { uuidv7Ms } from '../../domain/ids.ts';

export async function getEvent(ctx: StoreContext, id: string): Promise<HeraldEvent | null> {
  const rows = await ctx.db.all('SELECT * FROM events WHERE id = $1', [id]);
  return rows[0] ? eventOf(rows[0]) : null;
}

export async function listEvents(ctx: StoreContext, f: EventFilter): Promise<HeraldEvent[]> {
  // $5 is always used, so that PostgreSQL can type it: a list of types, or NULL for every type.
  const typeFilter = f.types ? `AND ${ctx.db.inList("(entity || '.' || event)", 5)}` : 'AND CAST($5 AS TEXT) IS NULL';
  const rows = await ctx.db.all(
    `SELECT * FROM events
     WHERE tenant_id = $1 AND created_at >= $2 AND entity <> $3 AND (CAST($4 AS TEXT) IS NULL OR parent_id = $4) ${typeFilter}
       AND (CAST($6 AS TEXT) IS NULL OR ${f.order === 'asc' ? 'id > $6' : 'id < $6'})
     ORDER BY id ${f.order === 'asc' ? 'ASC' : 'DESC'} LIMIT $7`,
    [f.tenantId, f.since, NOTICE_ENTITY, f.parentId ?? null, f.types ? ctx.db.list(f.types) : null, f.after ?? null, f.limit],
  );
  return rows.map(eventOf);
}

/** The millisecond of the newest event or delivery id in the store (0 when empty): two primary-key reads. */
export async function newestIdMs(ctx: StoreContext): Promise<number> {
  const rows = await ctx.db.all<{ e: string | null; d: string | null }>('SELECT (SELECT MAX(id) FROM events) AS e, (SELECT MAX(id) FROM deliveries) AS d');
  const ids = [rows[0]?.e, rows[0]?.d].filter((x): x is string => typeof x === 'string' && x.length >= 13);
  return Math.max(0, ...ids.map(uuidv7Ms).filter((n) => Number.isFinite(n)));
}
