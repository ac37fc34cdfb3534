import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { Db, Param } from '../db.ts';
import type { StoreUnavailableError } from '../../domain/errors.ts';
import { sqliteUnavailable } from '../unavailable.ts';

/**
 * node:sqlite is synchronous, but Herald's store code awaits between statements, so
 * two transactions could interleave on the one connection. A promise queue serialises
 * every transaction and every statement outside one.
 */
export class SqliteDb implements Db {
  readonly engine = 'sqlite' as const;
  readonly relaxed: Db = this;
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly inTx: Db;
  /** The last write refused for a full disk, until a write changes rows again (see writesRefused). */
  private full: StoreUnavailableError | null = null;

  /** `checkpointPages`: WAL pages after which a commit checkpoints (HERALD_SQLITE_CHECKPOINT_PAGES). */
  constructor(path: string, o: { checkpointPages?: number } = {}) {
    this.db = new DatabaseSync(path);
    this.db.exec('PRAGMA journal_mode = WAL');
    this.db.exec('PRAGMA synchronous = NORMAL');
    this.db.exec('PRAGMA foreign_keys = ON');
    this.db.exec('PRAGMA busy_timeout = 5000');
    // A checkpoint runs inside the COMMIT that crosses the threshold, on the main thread, and
    // everything waits for it. Hot pages (index tails, the newest attempts) are rewritten
    // constantly, so a longer WAL copies each back fewer times: 10,000 pages gave about 5 %
    // more throughput than 1,000, but a 67 ms pause a checkpoint, which at 500 single
    // publishes a second held p99 at 107-110 ms against 23-50 ms (README, Performance).
    this.db.exec(`PRAGMA wal_autocheckpoint = ${Math.trunc(o.checkpointPages ?? 1000)}`);
    this.db.exec('PRAGMA cache_size = -4000');
    const self = this;
    this.inTx = {
      engine: 'sqlite',
      all: async <T>(sql: string, params?: Param[]) => self.allNow<T>(sql, params),
      run: async (sql: string, params?: Param[]) => self.runNow(sql, params),
      exec: async (sql: string) => { self.execNow(sql); },
      tx: (fn) => fn(self.inTx),
      inList: self.inList,
      list: self.list,
      get relaxed() { return self.inTx; },
      close: () => self.close(),
    };
  }

  private prepare(sql: string): StatementSync {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql.replace(/\$(\d+)/g, '?$1'));
      this.statements.set(sql, st);
    }
    return st;
  }

  private bind(params: Param[] | undefined): (string | number | null)[] {
    return (params ?? []).map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : Array.isArray(p) ? JSON.stringify(p) : p));
  }

  // A full disk or an I/O error leaves as a StoreUnavailableError, whichever statement met it.
  private classify(err: unknown): unknown {
    const u = sqliteUnavailable(err);
    if (u?.reason === 'full') this.full = u;
    return u ?? err;
  }

  private allNow<T>(sql: string, params?: Param[]): T[] {
    try {
      return this.prepare(sql).all(...this.bind(params)) as T[];
    } catch (err) {
      throw this.classify(err);
    }
  }

  private runNow(sql: string, params?: Param[]): number {
    try {
      return Number(this.prepare(sql).run(...this.bind(params)).changes);
    } catch (err) {
      throw this.classify(err);
    }
  }

  private execNow(sql: string): void {
    try {
      this.db.exec(sql);
    } catch (err) {
      throw this.classify(err);
    }
  }

  /** Rows changed by this connection so far; read only while writes are refused. */
  private totalChanges(): number {
    return Number((this.prepare('SELECT total_changes() AS n').get() as { n: number }).n);
  }

  writesRefused(): Error | null {
    return this.full;
  }

  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  all<T>(sql: string, params?: Param[]): Promise<T[]> {
    return this.serial(() => this.allNow<T>(sql, params));
  }

  run(sql: string, params?: Param[]): Promise<number> {
    return this.serial(() => {
      const n = this.runNow(sql, params);
      if (n > 0) this.full = null;
      return n;
    });
  }

  exec(sql: string): Promise<void> {
    return this.serial(() => { this.execNow(sql); });
  }

  tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      // A transaction still open here is one whose ROLLBACK failed below: give it up first.
      if (this.db.isTransaction) this.execNow('ROLLBACK');
      this.execNow('BEGIN IMMEDIATE');
      // A transaction that writes nothing commits even on a full disk: only one that changed rows says space is back.
      const before = this.full ? this.totalChanges() : 0;
      try {
        const out = await fn(this.inTx);
        this.execNow('COMMIT');
        if (this.full && this.totalChanges() > before) this.full = null;
        return out;
      } catch (err) {
        // A COMMIT refused for a full disk leaves the transaction open: roll it back, and let
        // the first error be the one the caller hears of.
        if (this.db.isTransaction) {
          try {
            this.db.exec('ROLLBACK');
          } catch { /* tried again before the next transaction begins */ }
        }
        throw err;
      }
    });
  }

  inList(column: string, n: number): string {
    return `${column} IN (SELECT value FROM json_each($${n}))`;
  }

  list(values: string[]): Param {
    return JSON.stringify(values);
  }

  async close(): Promise<void> {
    await this.serial(() => {
      this.statements.clear();
      if (this.db.isOpen) this.db.close();
    });
  }
}
