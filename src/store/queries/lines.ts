// Entity lines of ordered subscriptions (migration 006): the check made after a commit.
import type { Db } from '../db.ts';

/** A line: one subscription's deliveries of one entity (order_key). */
export interface Line {
  sub: string;
  key: string;
}

/** The line a delivery of an ordered subscription joins: its event's entity type and entity_id (the subscription fixes the tenant). */
export const orderKey = (entity: string, entityId: string): string => JSON.stringify([entity, entityId]);

/**
 * PostgreSQL, after a commit that parked deliveries (a publish) or finished heads (outcomes):
 * makes each line's first unfinished delivery due if it still waits. An outcome's trigger
 * makes the next due in its own transaction, but cannot see a delivery that a publish parks
 * behind it at the same moment and commits after that trigger ran; each side checks again
 * once it has committed, and whichever commits last sees both. Due already: nothing changes.
 */
export async function promoteHeads(db: Db, lines: Line[], now: number): Promise<void> {
  if (lines.length === 0 || db.engine !== 'postgres') return;
  await db.run(
    `UPDATE deliveries d SET next_attempt_at = $3
     FROM (SELECT (SELECT x.id FROM deliveries x
                   WHERE x.subscription_id = u.s AND x.order_key = u.k AND x.status IN ('pending', 'held')
                   ORDER BY x.order_seq LIMIT 1) AS id
           FROM unnest($1::text[], $2::text[]) AS u(s, k)) h
     WHERE d.id = h.id AND d.next_attempt_at IS NULL`,
    [lines.map((l) => l.sub), lines.map((l) => l.key), now],
  );
}
