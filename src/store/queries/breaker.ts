// Deliveries waiting behind an open circuit breaker (src/dispatch/breaker.ts). Left due, they
// sit at the head of the due index, ahead of everyone else's, and every claim would step over
// them one by one: with 100,000 of them, a claim of 100 took 50 ms more on SQLite and 100 ms
// more on PostgreSQL (bench/claimSkip.ts). So all but the oldest few are set aside: moved to
// one distinctive time ahead, using up no attempt, and brought back the moment the breaker
// closes. If the process that set them aside dies, they are simply due at that time.
import type { StoreContext } from './context.ts';

/** Deliveries moved in one statement: each is a short write, so claims and outcomes get the store in between. */
const CHUNK = 2000;

/**
 * Sets the due deliveries of `subscriptionId` aside until `until`, all but the `keep` due
 * first (the breaker's probes come from those). Answers how many were set aside.
 */
export async function setAside(ctx: StoreContext, subscriptionId: string, until: number, keep: number): Promise<number> {
  const now = ctx.clock.now();
  const db = ctx.db.relaxed;
  const sql = db.engine === 'postgres'
    ? `UPDATE deliveries SET next_attempt_at = $3 WHERE id IN (
         SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $2 AND subscription_id = $1
         ORDER BY next_attempt_at OFFSET $4 LIMIT $5 FOR UPDATE SKIP LOCKED)`
    // `+subscription_id`: read through the due index (the head, where these deliveries are),
    // not the subscription's, which holds every delivery it ever had.
    : `UPDATE deliveries SET next_attempt_at = $3 WHERE id IN (
         SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $2 AND +subscription_id = $1
         ORDER BY next_attempt_at LIMIT $5 OFFSET $4)`;
  let total = 0;
  for (;;) {
    const n = await db.run(sql, [subscriptionId, now, until, keep, CHUNK]);
    total += n;
    if (n < CHUNK) return total;
    await new Promise<void>((r) => setImmediate(r));
  }
}

/** Makes the deliveries set aside until `until` due now; answers how many. */
export async function bringBack(ctx: StoreContext, subscriptionId: string, until: number): Promise<number> {
  const n = await ctx.db.relaxed.tx(async (t) => {
    const changed = await t.run(
      "UPDATE deliveries SET next_attempt_at = $3 WHERE status = 'pending' AND next_attempt_at = $2 AND subscription_id = $1",
      [subscriptionId, until, ctx.clock.now()],
    );
    if (changed > 0) await ctx.notifyDue(t);
    return changed;
  });
  return n;
}
