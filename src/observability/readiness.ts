// Readiness: the store answers a query within a bound, and its schema is exactly the one
// this build knows. Liveness (/healthz) asks nothing of the store, so a database outage
// takes Herald out of a load balancer's rotation without getting the process restarted.
import type { Db } from '../store/db.ts';
import { migrationState } from '../store/queries/operational.ts';

export type Readiness =
  | { status: 'ready'; store: Db['engine']; migrations: number[] }
  | { status: 'not_ready'; store: Db['engine']; reason: string; migrations?: number[] };

/** A probe that waits longer than this is answered "not ready" rather than left hanging. */
export const READY_TIMEOUT_MS = 2000;

class Timeout extends Error {}

function timeout(ms: number): { promise: Promise<never>; cancel: () => void } {
  let t: NodeJS.Timeout;
  const promise = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Timeout(`the store did not answer within ${ms} ms`)), ms); });
  return { promise, cancel: () => clearTimeout(t) };
}

/**
 * Asks the store. The reason names what is wrong without the database's own error text,
 * since /readyz needs no credentials; `onError` gets that text for the log.
 */
export async function readiness(db: Db, onError: (err: unknown) => void = () => undefined, timeoutMs = READY_TIMEOUT_MS): Promise<Readiness> {
  const store = db.engine;
  let state;
  const t = timeout(timeoutMs);
  try {
    state = await Promise.race([migrationState(db), t.promise]);
  } catch (err) {
    onError(err);
    return { status: 'not_ready', store, reason: err instanceof Timeout ? err.message : 'the store refused the query (see the log)' };
  } finally {
    t.cancel();
  }
  // SQLite on a full disk still answers reads: readiness must not be one of them alone.
  const refused = db.writesRefused?.();
  if (refused) return { status: 'not_ready', store, reason: `writes are refused: ${refused.message}` };
  const { applied, known } = state;
  const missing = known.filter((v) => !applied.includes(v));
  const unknown = applied.filter((v) => !known.includes(v));
  if (missing.length) return { status: 'not_ready', store, reason: `migrations not applied: ${missing.join(', ')}`, migrations: applied };
  if (unknown.length) return { status: 'not_ready', store, reason: `migrations newer than this build: ${unknown.join(', ')}`, migrations: applied };
  return { status: 'ready', store, migrations: applied };
}
