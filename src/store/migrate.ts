import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from './db.ts';

const DIRS = {
  sqlite: new URL('./sqlite/migrations/', import.meta.url),
  postgres: new URL('./postgres/migrations/', import.meta.url),
};

export interface Migration { version: number; name: string; sql: string }

export function loadMigrations(engine: Db['engine']): Migration[] {
  const dir = DIRS[engine].pathname;
  return readdirSync(dir)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.split('_')[0]), name: f, sql: readFileSync(join(dir, f), 'utf8') }));
}

/**
 * Taken in each migration's transaction on PostgreSQL. Advisory locks are database-wide: keyed
 * by schema, so that Heralds in other schemas of the same database (HERALD_DATABASE_SCHEMA)
 * neither wait for this one nor make it wait.
 */
export const MIGRATION_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('herald_migrate:' || current_schema()))";

/**
 * Applies the migrations not yet applied, each in its own transaction, under a lock so
 * two processes starting together do not both apply one. A migration counts as applied by
 * its own version's row, not by a higher version's, so that one numbered below the latest
 * (merged from a branch after it) is still applied. Refuses a schema newer than this Herald
 * knows. Answers the versions it applied.
 */
export async function migrate(db: Db, migrations: Migration[] = loadMigrations(db.engine)): Promise<number[]> {
  const known = Math.max(0, ...migrations.map((m) => m.version));
  await db.exec('CREATE TABLE IF NOT EXISTS herald_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
  const applied: number[] = [];
  for (const m of migrations) {
    const done = await db.tx(async (t) => {
      if (t.engine === 'postgres') await t.all(MIGRATION_LOCK_SQL);
      const rows = await t.all<{ version: number | null; here: number | null }>(
        'SELECT MAX(version) AS version, MAX(CASE WHEN version = $1 THEN 1 ELSE 0 END) AS here FROM herald_migrations', [m.version]);
      const current = Number(rows[0]?.version ?? 0);
      if (current > known) throw new Error(`the database schema is at version ${current}, newer than this Herald knows (${known}); upgrade Herald`);
      if (Number(rows[0]?.here ?? 0) === 1) return false;
      await t.exec(m.sql);
      await t.run('INSERT INTO herald_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
      return true;
    });
    if (done) applied.push(m.version);
  }
  return applied;
}
