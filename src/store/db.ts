// The seam between Herald's SQL and the two engines. Statements are written once with
// $1..$n placeholders; the SQLite engine rewrites them to ?1..?n.

export type Param = string | number | null | boolean | string[];

/**
 * `prepared`: a statement run often (claims, the due poll, single publishes), which PostgreSQL keeps
 * parsed and planned on each connection instead of planning it at every call (planning took
 * as long as running for these). Only for statements whose text is one of a few and whose
 * result names its columns: a `*` in the result would fail a prepared statement once a
 * migration adds a column. SQLite keeps every statement prepared anyway.
 */
export interface QueryOptions {
  prepared?: boolean;
}

export interface Db {
  readonly engine: 'sqlite' | 'postgres';
  all<T = Record<string, any>>(sql: string, params?: Param[], options?: QueryOptions): Promise<T[]>;
  /** Runs a statement and answers how many rows it changed. */
  run(sql: string, params?: Param[], options?: QueryOptions): Promise<number>;
  /** Runs several statements with no parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** One transaction; on SQLite a write transaction (BEGIN IMMEDIATE), serialised in-process. */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  /**
   * Calls `fn` once this transaction has committed (not at all if it rolls back); outside a
   * transaction, at once. PostgreSQL only: SQLite has nothing to announce after a commit.
   */
  afterCommit?(fn: () => void): void;
  /** `column IN list` for the list bound at parameter $n. */
  inList(column: string, n: number): string;
  /** A list value for a parameter used with inList. */
  list(values: string[]): Param;
  /**
   * The same database, for writes that may be lost in a crash of the database server without
   * harm (a lost claim or outcome only makes a delivery due again). PostgreSQL: sessions with
   * synchronous_commit off. SQLite: itself.
   */
  readonly relaxed: Db;
  /**
   * Why writes are refused though reads still work (SQLite on a full disk), until a write
   * succeeds again; null when they are not. Absent on an engine whose every query fails then.
   */
  writesRefused?(): Error | null;
  close(): Promise<void>;
}

/** Inserts many rows into `table`, in chunks the engine accepts. */
export async function insertMany(db: Db, table: string, columns: string[], rows: Param[][], options: QueryOptions = {}): Promise<void> {
  if (rows.length === 0) return;
  if (db.engine === 'sqlite') {
    // In-process SQLite: one prepared single-row statement is faster than a huge multi-row one.
    const one = `INSERT INTO ${table} (${columns.join(',')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(',')})`;
    for (const row of rows) await db.run(one, row);
    return;
  }
  // PostgreSQL allows 65535 parameters a statement; SQLite's default limit is 32766.
  const perChunk = Math.max(1, Math.floor(30000 / columns.length));
  for (let i = 0; i < rows.length; i += perChunk) {
    const chunk = rows.slice(i, i + perChunk);
    const params: Param[] = [];
    const tuples = chunk.map((row) => {
      const ph = row.map((v) => { params.push(v); return `$${params.length}`; });
      return `(${ph.join(',')})`;
    });
    // Prepared only for a single row (single publishes): a text for every batch size would be a
    // plan for each on every connection.
    await db.run(`INSERT INTO ${table} (${columns.join(',')}) VALUES ${tuples.join(',')}`, params, { prepared: options.prepared === true && chunk.length === 1 });
  }
}
