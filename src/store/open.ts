import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import type { Config } from '../config.ts';
import { SqliteDb } from './sqlite/db.ts';
import { SqlStore } from './sqlStore.ts';

export interface StoreOptions {
  databaseUrl: string | null;
  databaseSchema: string;
  dataDir: string;
  /** Called with a reason when the LISTEN connection fails; the poll keeps working meanwhile. */
  onListenError?: (err: Error) => void;
}

export function storeOptions(c: Config): StoreOptions {
  return { databaseUrl: c.databaseUrl, databaseSchema: c.databaseSchema, dataDir: c.dataDir };
}

/** Opens the configured engine. The caller runs migrate() before use. */
export async function openStore(o: StoreOptions): Promise<SqlStore> {
  if (!o.databaseUrl) {
    mkdirSync(o.dataDir, { recursive: true });
    return new SqlStore(new SqliteDb(join(o.dataDir, 'herald.db')));
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
  const pool = new pg.Pool({ connectionString: o.databaseUrl, max: 10, options: `-c search_path="${schema}"` });
  const relaxed = new pg.Pool({ connectionString: o.databaseUrl, max: 4, options: `-c search_path="${schema}" -c synchronous_commit=off` });
  // An idle client's error is answered by the next query's own.
  pool.on('error', () => undefined);
  relaxed.on('error', () => undefined);
  const channel = `herald_due_${schema}`;
  let listener: Client | null = null;
  let closed = false;

  const listen = async (wake: () => void): Promise<void> => {
    const connect = async (): Promise<void> => {
      if (closed) return;
      const c = new pg.Client({ connectionString: o.databaseUrl! });
      c.on('notification', () => wake());
      c.on('error', (err) => {
        o.onListenError?.(err);
        c.end().catch(() => undefined);
        if (listener === c) listener = null;
        // The poll covers the gap; try to listen again shortly.
        setTimeout(() => { connect().catch((e) => o.onListenError?.(e)); }, 1000).unref();
      });
      await c.connect();
      await c.query(`LISTEN "${channel}"`);
      listener = c;
    };
    await connect();
  };

  const db = new PostgresDb(pool, undefined, relaxed);
  const store = new SqlStore(db, { listen, notifySql: `SELECT pg_notify('${channel}', '')` });
  const close = db.close.bind(db);
  db.close = async () => {
    closed = true;
    await listener?.end().catch(() => undefined);
    await close();
  };
  return store;
}

export const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,47}$/;
