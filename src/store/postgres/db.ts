import pg from 'pg';
import { createHash } from 'node:crypto';
import type { Db, Param, QueryOptions } from '../db.ts';
import { StoreUnavailableError } from '../../domain/errors.ts';
import { pgUnavailable } from '../unavailable.ts';

// Herald keeps times as epoch milliseconds in BIGINT columns; read them back as numbers.
pg.types.setTypeParser(20, (v: string) => Number(v));

type Queryable = pg.Pool | pg.PoolClient;

function bind(params: Param[] | undefined): unknown[] {
  return params ?? [];
}

/** Each prepared statement's name, from its text: the same on every connection and process. */
const names = new Map<string, string>();
function nameOf(sql: string): string {
  let n = names.get(sql);
  if (n === undefined) names.set(sql, (n = `herald_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`));
  return n;
}

/**
 * A write refused for a full disk, shared by a Db, its transactions and its relaxed sessions,
 * until one of the statements refused (`refused`, by text) changes rows again: the server still
 * answers reads then, and /readyz must know. Any other write is no sign of space: a table's
 * last page may still hold an update or a small row when the next extension is refused.
 * (A refusal known by no statement, at COMMIT, is cleared by any write that changes rows.)
 * `changed` marks a transaction in which such a statement changed rows, so that its COMMIT
 * can clear `full`.
 */
interface Health { full: StoreUnavailableError | null; refused: Set<string> }

/** Whether a statement's result says it changed rows. */
const changedRows = (r: pg.QueryResult) => r.command !== 'SELECT' && (r.rowCount ?? 0) > 0;

// A client checked out for a transaction has no error listener of the pool's: a server that
// dies meanwhile would emit an 'error' nobody hears, which ends the process. The transaction's
// own query fails with the same error, so this listener need only be there.
const ignore = (): void => undefined;

export class PostgresDb implements Db {
  readonly engine = 'postgres' as const;
  readonly pool: pg.Pool;
  private readonly conn: Queryable;
  private readonly relaxedPool: pg.Pool | null;
  private relaxedDb: PostgresDb | null = null;
  private readonly health: Health;
  /** In a transaction: whether a statement of it changed rows. */
  private changed = false;
  /** In a transaction: what to call once it has committed. */
  private committed: (() => void)[] = [];

  /** Whether statements marked `prepared` are prepared (HERALD_DATABASE_PREPARED). */
  private readonly prepare: boolean;

  /** `relaxedPool`: sessions with synchronous_commit off, for `relaxed`. */
  constructor(pool: pg.Pool, conn?: Queryable, relaxedPool: pg.Pool | null = null, health: Health = { full: null, refused: new Set() }, prepare = true) {
    this.pool = pool;
    this.conn = conn ?? pool;
    this.relaxedPool = relaxedPool;
    this.health = health;
    this.prepare = prepare;
  }

  get relaxed(): PostgresDb {
    if (!this.relaxedPool || this.conn !== this.pool) return this;
    return (this.relaxedDb ??= new PostgresDb(this.relaxedPool, undefined, null, this.health, this.prepare));
  }

  private config(sql: string, params: Param[] | undefined, o: QueryOptions | undefined): pg.QueryConfig {
    return o?.prepared && this.prepare ? { name: nameOf(sql), text: sql, values: bind(params) } : { text: sql, values: bind(params) };
  }

  /** A server down, restarting or out of disk leaves as a StoreUnavailableError; anything else as it came. */
  private classified(err: unknown, sql?: string): unknown {
    const u = pgUnavailable(err);
    if (u?.reason === 'full') {
      this.health.full = u;
      if (sql !== undefined) this.health.refused.add(sql);
    }
    return u ?? err;
  }

  private async query(q: string | pg.QueryConfig): Promise<pg.QueryResult> {
    const sql = typeof q === 'string' ? q : q.text;
    let r: pg.QueryResult;
    try {
      r = await this.conn.query(q);
    } catch (err) {
      throw this.classified(err, sql);
    }
    if (this.health.full && changedRows(r) && (this.health.refused.size === 0 || this.health.refused.has(sql))) {
      // Outside a transaction the change is committed; inside, it counts at COMMIT.
      if (this.conn === this.pool) this.spaceBack();
      else this.changed = true;
    }
    return r;
  }

  private spaceBack(): void {
    this.health.full = null;
    this.health.refused.clear();
  }

  writesRefused(): Error | null {
    return this.health.full;
  }

  async all<T>(sql: string, params?: Param[], options?: QueryOptions): Promise<T[]> {
    return (await this.query(this.config(sql, params, options))).rows as T[];
  }

  async run(sql: string, params?: Param[], options?: QueryOptions): Promise<number> {
    return (await this.query(this.config(sql, params, options))).rowCount ?? 0;
  }

  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.conn !== this.pool) return fn(this);
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.classified(err);
    }
    client.on('error', ignore);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const inner = new PostgresDb(this.pool, client, null, this.health, this.prepare);
      const out = await fn(inner);
      await client.query('COMMIT');
      if (inner.changed) this.spaceBack();
      for (const f of inner.committed) f();
      return out;
    } catch (err) {
      const c = this.classified(err);
      // A client whose connection failed goes, rather than back to the pool for the next caller to meet.
      if (c instanceof StoreUnavailableError && c.reason === 'unreachable') broken = c;
      await client.query('ROLLBACK').catch(() => undefined);
      throw c;
    } finally {
      client.removeListener('error', ignore);
      client.release(broken);
    }
  }

  afterCommit(fn: () => void): void {
    if (this.conn === this.pool) fn();
    else this.committed.push(fn);
  }

  inList(column: string, n: number): string {
    return `${column} = ANY($${n}::text[])`;
  }

  list(values: string[]): Param {
    return values;
  }

  private closing: Promise<void> | null = null;

  /** Idempotent: a pool refuses a second end(), and a failed readiness probe may close first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.pool.end();
      await this.relaxedPool?.end();
    })();
    return this.closing;
  }
}
