// What every store verb works with: the database, the clock due times are read on, and
// the hooks the SqlStore facade carries. Each verb group lives in its own file beside this one.
import type { Clock } from '../../domain/clock.ts';
import type { Db } from '../db.ts';
import type { AutoDisablePolicy } from './autoDisable.ts';

export interface StoreContext {
  readonly db: Db;
  /** Due times, leases and the in-flight test are all read on this clock, the dispatcher's own. */
  readonly clock: Clock;
  /** Tells other processes that deliveries became due (no-op on SQLite). */
  notifyDue(t: Db): Promise<void>;
  /** Failures in a row that take a subscription out of service; null: never. */
  readonly autoDisable: AutoDisablePolicy | null;
  /** Called after attempts are recorded. */
  readonly onAttemptsRecorded: (() => void) | null;
}
