// Retention: the statements that prune old records, in small batches over either engine.
// Each batch is one short transaction that walks the primary key from a cursor, so a pass
// reads every old row once and no index is added to the tables delivery writes to.
import { FINISHED_STATES } from '../../domain/retention.ts';
import type { Db } from '../db.ts';

export interface BatchScope {
  /** Exclusive lower bound of the ids to look at ('' for the start of the table). */
  after: string;
  /** Exclusive upper bound: ids at or above it are too new (idFloor of the cut-off). */
  below: string;
  /** Rows finished (deliveries) or created (events) before this are old enough. */
  cutoff: number;
  now: number;
  /** Rows this batch looks at. */
  limit: number;
}

export interface BatchResult {
  /** Rows looked at; fewer than the limit means the range is done. */
  scanned: number;
  /** The cursor for the next batch. */
  last: string;
  deleted: number;
  /** Attempts removed with the deliveries. */
  attempts: number;
  /** PostgreSQL: another process holds the pruning lock, nothing was done. */
  busy: boolean;
}

const FINISHED = FINISHED_STATES.map((s) => `'${s}'`).join(', ');

/**
 * A delivery may go once it is finished, its last change (the outcome, or its cancellation)
 * came before the cut-off, and no dispatcher holds a live lease on it (a delivery cancelled
 * while in flight keeps its lease until the attempt is recorded).
 */
const DELIVERY_GONE = `status IN (${FINISHED}) AND updated_at < $2 AND (lease_token IS NULL OR next_attempt_at < $3)`;

/** An event may go once it is old enough and none of its deliveries is left. */
const EVENT_GONE = 'created_at < $2 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)';

/** The advisory lock's key: one per schema, so Heralds in other schemas of the database do not wait for each other. */
export const PRUNE_LOCK_KEY = "hashtext('herald_retention:' || current_schema())";

/**
 * On PostgreSQL only one process prunes at a time: a transaction-level advisory lock,
 * tried and never waited for, so a second process steps aside at once and no lock outlives
 * a batch.
 */
async function takeTurn(t: Db): Promise<boolean> {
  if (t.engine !== 'postgres') return true;
  const rows = await t.all<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(${PRUNE_LOCK_KEY}) AS ok`);
  return Boolean(rows[0]?.ok);
}

async function scan(t: Db, table: string, s: BatchScope): Promise<string[]> {
  const rows = await t.all<{ id: string }>(`SELECT id FROM ${table} WHERE id > $1 AND id < $2 ORDER BY id LIMIT $3`, [s.after, s.below, s.limit]);
  return rows.map((r) => r.id);
}

/** Removes the old finished deliveries among the next `limit` ids, with their attempts. */
export function pruneDeliveriesBatch(db: Db, s: BatchScope): Promise<BatchResult> {
  return db.tx(async (t) => {
    if (!(await takeTurn(t))) return { scanned: 0, last: s.after, deleted: 0, attempts: 0, busy: true };
    const ids = await scan(t, 'deliveries', s);
    const last = ids.at(-1) ?? s.after;
    if (ids.length === 0) return { scanned: 0, last, deleted: 0, attempts: 0, busy: false };
    // PostgreSQL: lock what goes, passing over rows a claim, an outcome or a retry holds now;
    // those are kept this time, and a retry that waits for the lock finds the row gone.
    const lock = t.engine === 'postgres' ? ' FOR UPDATE SKIP LOCKED' : '';
    const gone = (await t.all<{ id: string }>(
      `SELECT id FROM deliveries WHERE ${t.inList('id', 1)} AND ${DELIVERY_GONE}${lock}`,
      [t.list(ids), s.cutoff, s.now],
    )).map((r) => r.id);
    if (gone.length === 0) return { scanned: ids.length, last, deleted: 0, attempts: 0, busy: false };
    // Attempts first, in one statement, rather than one cascade lookup per delivery.
    const attempts = await t.run(`DELETE FROM attempts WHERE ${t.inList('delivery_id', 1)}`, [t.list(gone)]);
    const deleted = await t.run(`DELETE FROM deliveries WHERE ${t.inList('id', 1)}`, [t.list(gone)]);
    return { scanned: ids.length, last, deleted, attempts, busy: false };
  });
}

/** Removes the old events among the next `limit` ids that no delivery refers to any more. */
export function pruneEventsBatch(db: Db, s: BatchScope): Promise<BatchResult> {
  return db.tx(async (t) => {
    if (!(await takeTurn(t))) return { scanned: 0, last: s.after, deleted: 0, attempts: 0, busy: true };
    const ids = await scan(t, 'events', s);
    const last = ids.at(-1) ?? s.after;
    if (ids.length === 0) return { scanned: 0, last, deleted: 0, attempts: 0, busy: false };
    // A publish never adds deliveries to an existing event, so the check cannot go stale
    // within the transaction; the DELETE makes it again all the same.
    const deleted = await t.run(`DELETE FROM events WHERE ${t.inList('id', 1)} AND ${EVENT_GONE}`, [t.list(ids), s.cutoff]);
    return { scanned: ids.length, last, deleted, attempts: 0, busy: false };
  });
}

/**
 * Removes up to `limit` bulk recovery jobs that finished (done or cancelled) before the
 * cut-off: a job's record is its report, kept as long as the deliveries it resent.
 */
export function pruneRecoveriesBatch(db: Db, s: BatchScope): Promise<BatchResult> {
  return db.tx(async (t) => {
    if (!(await takeTurn(t))) return { scanned: 0, last: s.after, deleted: 0, attempts: 0, busy: true };
    const ids = (await t.all<{ id: string }>(
      "SELECT id FROM recoveries WHERE id > $1 AND state <> 'running' AND finished_at < $2 ORDER BY id LIMIT $3",
      [s.after, s.cutoff, s.limit],
    )).map((r) => r.id);
    if (ids.length === 0) return { scanned: 0, last: s.after, deleted: 0, attempts: 0, busy: false };
    const deleted = await t.run(`DELETE FROM recoveries WHERE ${t.inList('id', 1)}`, [t.list(ids)]);
    return { scanned: ids.length, last: ids.at(-1)!, deleted, attempts: 0, busy: false };
  });
}

/** SQLite: pages on the free list (reused by later writes before the file grows). */
export async function sqliteFreePages(db: Db): Promise<{ pages: number; free: number; pageSize: number } | null> {
  if (db.engine !== 'sqlite') return null;
  const [p] = await db.all<{ page_count: number }>('PRAGMA page_count');
  const [f] = await db.all<{ freelist_count: number }>('PRAGMA freelist_count');
  const [s] = await db.all<{ page_size: number }>('PRAGMA page_size');
  return { pages: Number(p!.page_count), free: Number(f!.freelist_count), pageSize: Number(s!.page_size) };
}
