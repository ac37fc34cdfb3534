// The seam between Herald's SQL and the two engines. Statements are written once with
// $1..$n placeholders; the SQLite engine rewrites them to ?1..?n.

export type Param = string | number | null | boolean | string[];

export interface Db {
  readonly engine: 'sqlite' | 'postgres';
  all<T = Record<string, any>>(sql: string, params?: Param[]): Promise<T[]>;
  /** Runs a statement and answers how many rows it changed. */
  run(sql: string, params?: Param[]): Promise<number>;
  /** Runs several statements with no parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** One transaction; on SQLite a write transaction (BEGIN IMMEDIATE), serialised in-process. */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T>;
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
export async function insertMany(db: Db, table: string, columns: string[], rows: Param[][]): Promise<void> {
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
    await db.run(`INSERT INTO ${table} (${columns.join(',')}) VALUES ${tuples.join(',')}`, params);
  }
}
