// What the operational endpoints ask the store: how much waits (for /metrics) and whether
// the store answers with the schema this build expects (for /readyz). Cheap enough to run
// on every scrape or probe, on either engine.
import type { Db } from '../db.ts';
import { loadMigrations } from '../migrate.ts';

export interface QueueDepth {
  /** Pending deliveries whose time has come (including leases that ran out): what claims take next. */
  due: number;
  /** Pending deliveries waiting for a later time (retries, Retry-After), not held by a dispatcher. */
  scheduled: number;
  /** Pending deliveries a dispatcher holds right now, in any process. */
  leased: number;
  /** Deliveries of an ordered subscription waiting for an earlier one of their entity (no due time yet). */
  inLine: number;
}

export interface MigrationState {
  /** Versions recorded as applied, in order. */
  applied: number[];
  /** Versions this build ships. */
  known: number[];
}

/**
 * Counts the pending deliveries by the covering due index alone, except for those due
 * within a lease of now, which are read to tell a lease (lease_token set) from a retry:
 * a claim sets next_attempt_at to the lease's end, so no lease lies further out. On a
 * million-row SQLite backlog the whole count took about 25 ms; reading lease_token for
 * every not-yet-due row instead cost 35 ms more per 100,000 of them.
 */
export async function queueDepth(db: Db, now: number, leaseMs: number): Promise<QueueDepth> {
  // A minute's slack covers clocks that differ between the processes sharing a PostgreSQL store.
  const leaseHorizon = now + leaseMs + 60_000;
  // Those waiting in a line are read through the partial index of unfinished ordered deliveries.
  const rows = await db.all<{ due: number | string; later: number | string; leased: number | string; in_line: number | string }>(
    `SELECT
       (SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1) AS due,
       (SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at > $1) AS later,
       (SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at > $1 AND next_attempt_at <= $2
          AND lease_token IS NOT NULL) AS leased,
       (SELECT COUNT(*) FROM deliveries WHERE order_key IS NOT NULL AND status = 'pending' AND next_attempt_at IS NULL) AS in_line`,
    [now, leaseHorizon],
  );
  const r = rows[0]!;
  const leased = Number(r.leased);
  return { due: Number(r.due), scheduled: Number(r.later) - leased, leased, inLine: Number(r.in_line) };
}

/** The files do not change while Herald runs: read once per engine, not on every probe. */
const knownVersions = new Map<Db['engine'], number[]>();

/** The applied migrations beside the ones this build knows; throws when the store does not answer. */
export async function migrationState(db: Db): Promise<MigrationState> {
  let known = knownVersions.get(db.engine);
  if (!known) knownVersions.set(db.engine, (known = loadMigrations(db.engine).map((m) => m.version)));
  const rows = await db.all<{ version: number | string }>('SELECT version FROM herald_migrations ORDER BY version');
  return { applied: rows.map((r) => Number(r.version)), known };
}
