import pg from 'pg';
import type { Db, Param } from '../db.ts';

// Herald keeps times as epoch milliseconds in BIGINT columns; read them back as numbers.
pg.types.setTypeParser(20, (v: string) => Number(v));

type Queryable = pg.Pool | pg.PoolClient;

function bind(params: Param[] | undefined): unknown[] {
  return params ?? [];
}

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
    const r = await this.conn.query({ text: sql, values: bind(params) });
    return r.rows as T[];
  }

  async run(sql: string, params?: Param[]): Promise<number> {
    const r = await this.conn.query({ text: sql, values: bind(params) });
    return r.rowCount ?? 0;
  }

  async exec(sql: string): Promise<void> {
    await this.conn.query(sql);
  }

  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.conn !== this.pool) return fn(this);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const out = await fn(new PostgresDb(this.pool, client));
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
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
