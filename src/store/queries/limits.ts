// What the per-tenant limits ask the store, on either engine.
import type { Db } from '../db.ts';

/** A tenant's subscriptions that are not deleted, of every dialect (herald listen sessions included). */
export async function countLiveSubscriptions(db: Db, tenantId: string): Promise<number> {
  const rows = await db.all<{ n: number | string }>('SELECT count(*) AS n FROM subscriptions WHERE tenant_id = $1 AND deleted_at IS NULL', [tenantId]);
  return Number(rows[0]?.n ?? 0);
}
