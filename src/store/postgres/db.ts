import pg from 'pg';
import type { Db, Param } from '../db.ts';
import { StoreUnavailableError } from '../../domain/errors.ts';
import { pgUnavailable } from '../unavailable.ts';

// Herald keeps times as epoch milliseconds in BIGINT columns; read them back as numbers.
pg.types.setTypeParser(20, (v: string) => Number(v));

type Queryable = pg.Pool | pg.PoolClient;

function bind(params: Param[] | undefined): unknown[] {
  return params ?? [];
}

/** A server down, restarting or out of disk leaves as a StoreUnavailableError; anything else as it came. */
function classified(err: unknown): unknown {
  return pgUnavailable(err) ?? err;
}

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

  /** `relaxedPool`: sessions with synchronous_commit off, for `relaxed`. */
  constructor(pool: pg.Pool, conn?: Queryable, relaxedPool: pg.Pool | null = null) {
    this.pool = pool;
    this.conn = conn ?? pool;
    this.relaxedPool = relaxedPool;
  }

  get relaxed(): PostgresDb {
    if (!this.relaxedPool || this.conn !== this.pool) return this;
    return (this.relaxedDb ??= new PostgresDb(this.relaxedPool));
  }

  async all<T>(sql: string, params?: Param[]): Promise<T[]> {
    try {
      const r = await this.conn.query({ text: sql, values: bind(params) });
      return r.rows as T[];
    } catch (err) {
      throw classified(err);
    }
  }

  async run(sql: string, params?: Param[]): Promise<number> {
    try {
      const r = await this.conn.query({ text: sql, values: bind(params) });
      return r.rowCount ?? 0;
    } catch (err) {
      throw classified(err);
    }
  }

  async exec(sql: string): Promise<void> {
    try {
      await this.conn.query(sql);
    } catch (err) {
      throw classified(err);
    }
  }

  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.conn !== this.pool) return fn(this);
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw classified(err);
    }
    client.on('error', ignore);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const out = await fn(new PostgresDb(this.pool, client));
      await client.query('COMMIT');
      return out;
    } catch (err) {
      const c = classified(err);
      // A client whose connection failed goes, rather than back to the pool for the next caller to meet.
      if (c instanceof StoreUnavailableError) broken = c;
      await client.query('ROLLBACK').catch(() => undefined);
      throw c;
    } finally {
      client.removeListener('error', ignore);
      client.release(broken);
    }
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
