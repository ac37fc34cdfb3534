import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import type { Config } from '../config.ts';
import type { Clock } from '../domain/clock.ts';
import { SqliteDb } from './sqlite/db.ts';
import { SqlStore } from './sqlStore.ts';

export interface StoreOptions {
  databaseUrl: string | null;
  databaseSchema: string;
  /** PostgreSQL: whether statements marked prepared are (HERALD_DATABASE_PREPARED); on when absent. */
  databasePrepared?: boolean;
  /** SQLite: WAL pages between checkpoints (HERALD_SQLITE_CHECKPOINT_PAGES); 1,000 when absent. */
  sqliteCheckpointPages?: number;
  dataDir: string;
  /** Called with a reason when the LISTEN connection fails; the poll keeps working meanwhile. */
  onListenError?: (err: Error) => void;
  /** What the store's due times and leases are measured on (the system clock when absent). */
  clock?: Clock;
}

export function storeOptions(c: Config): StoreOptions {
  return { databaseUrl: c.databaseUrl, databaseSchema: c.databaseSchema, databasePrepared: c.databasePrepared, sqliteCheckpointPages: c.sqliteCheckpointPages, dataDir: c.dataDir };
}

/** Opens the configured engine. The caller runs migrate() before use. */
export async function openStore(o: StoreOptions): Promise<SqlStore> {
  if (!o.databaseUrl) {
    mkdirSync(o.dataDir, { recursive: true });
    return new SqlStore(new SqliteDb(join(o.dataDir, 'herald.db'), { checkpointPages: o.sqliteCheckpointPages }), { clock: o.clock });
  }
  // Loaded only for PostgreSQL: the client library is about 10 MB of memory a SQLite process need not hold.
  const { default: pg } = await import('pg');
  const { PostgresDb } = await import('./postgres/db.ts');
  const schema = o.databaseSchema;
  const setup = new pg.Client({ connectionString: o.databaseUrl });
  await setup.connect();
  try {
    await setup.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  } finally {
    await setup.end();
  }
  // A server that does not answer (a dead host, a full pool) fails the request within a bound, as
  // 503, rather than holding it; keep-alive finds connections that died without a word.
  const common = { connectionString: o.databaseUrl, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true };
  const pool = new pg.Pool({ ...common, max: 10, options: `-c search_path="${schema}"` });
  // The relaxed sessions claim and record outcomes. With bitmap scans off a claim's window stays an
  // index scan on deliveries_due whatever the statistics say: on statistics older than a backlog
  // the planner took a bitmap scan of every due row and a sort (bench: server CPU a delivery
  // 466-520 µs against 289-336). Their other statements look rows up by key and lose nothing.
  const relaxed = new pg.Pool({ ...common, max: 4, options: `-c search_path="${schema}" -c synchronous_commit=off -c enable_bitmapscan=off` });
  // An idle client's error is answered by the next query's own.
  pool.on('error', () => undefined);
  relaxed.on('error', () => undefined);
  const channel = `herald_due_${schema}`;
  // Each process signs its NOTIFY and does not wake for its own: whatever made deliveries due
  // in this process has woken its dispatcher already, as on SQLite, and the echo a round trip
  // later only made a second claim, which passed over every full subscription's due rows.
  const self = randomBytes(8).toString('hex');
  let listener: Client | null = null;
  let closed = false;

  const listen = async (wake: () => void): Promise<void> => {
    // The poll covers the gap while the server is away; LISTEN is tried again, backing off, until
    // it is back (every try, not only the first after the loss: a restart takes several seconds).
    let retryMs = 0;
    const connect = async (first: boolean): Promise<void> => {
      if (closed) return;
      const c = new pg.Client({ connectionString: o.databaseUrl!, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true });
      let lost = false;
      const onLost = (err: Error) => {
        if (lost || closed) return;
        lost = true;
        if (listener === c) listener = null;
        c.end().catch(() => undefined);
        o.onListenError?.(err);
        retryMs = Math.min(retryMs ? retryMs * 2 : 250, 5000);
        setTimeout(() => { void connect(false); }, retryMs).unref();
      };
      c.on('notification', (m) => { if (m.payload !== self) wake(); });
      c.on('error', onLost);
      c.on('end', () => onLost(new Error('the LISTEN connection ended')));
      try {
        await c.connect();
        await c.query(`LISTEN "${channel}"`);
      } catch (err) {
        if (first) {
          lost = true;
          await c.end().catch(() => undefined);
          throw err;
        }
        onLost(err as Error);
        return;
      }
      if (closed) {
        await c.end().catch(() => undefined);
        return;
      }
      listener = c;
      retryMs = 0;
      // What other processes made due while nobody listened was announced to no one.
      if (!first) wake();
    };
    await connect(true);
  };

  const db = new PostgresDb(pool, undefined, relaxed, undefined, o.databasePrepared ?? true);
  const store = new SqlStore(db, { listen, notifySql: `SELECT pg_notify('${channel}', '${self}')`, clock: o.clock });
  const close = db.close.bind(db);
  db.close = async () => {
    closed = true;
    await listener?.end().catch(() => undefined);
    await close();
  };
  return store;
}

/** How long a connection to PostgreSQL (or a free one from the pool) may take before the request fails. */
const CONNECT_TIMEOUT_MS = 10_000;

export const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,47}$/;
