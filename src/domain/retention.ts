// What retention may remove, and what it must leave. Pure rules, shared by the pruner and
// the APIs that promise to show old records.

export const DAY_MS = 86_400_000;

/** The Gusto-style events API lists a tenant's events of the last 30 days: none may be pruned sooner. */
export const EVENTS_API_WINDOW_MS = 30 * DAY_MS;

/** States a delivery never leaves by itself: only these may be pruned (and only once no lease is live). */
export const FINISHED_STATES = ['succeeded', 'failed', 'cancelled'] as const;

/** The cut-offs of one pruning pass: deliveries finished before `deliveriesBefore`, events created before `eventsBefore`. */
export function cutoffs(now: number, retentionMs: number): { deliveriesBefore: number; eventsBefore: number } {
  const deliveriesBefore = now - retentionMs;
  return { deliveriesBefore, eventsBefore: Math.min(deliveriesBefore, now - EVENTS_API_WINDOW_MS) };
}

/**
 * The lowest UUIDv7 of millisecond `ms`. Herald's ids carry their creation time in their
 * first 48 bits, so the rows created before `ms` sort below this: a primary-key range that
 * bounds a pruning scan without another index on the hot tables. An id runs ahead of its
 * row's created_at only when more than 4096 are made in one millisecond, or after the clock
 * stepped back (by the step), which only puts that row in a later pass. The scan is only a bound: what
 * is removed is decided by the row's own times and state.
 */
export function idFloor(ms: number): string {
  const h = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-0000-0000-000000000000`;
}
