// The migration lock is per schema: a Herald migrating one schema does not hold up Heralds
// starting in other schemas of the same database (the chaos suite saw starts of 10 to 20 s,
// and one that never came, while other schemas migrated), and still excludes a second
// migration of its own schema. And a migration is applied by its own version, not skipped
// for a higher one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MIGRATION_LOCK_SQL, migrate, type Migration } from '../src/store/migrate.ts';
import { SqliteDb } from '../src/store/sqlite/db.ts';
import { openStore } from '../src/store/open.ts';
import { dropSchema, freshSchema, pgEnabled, PG_URL } from './helpers/pg.ts';

test('migrating one schema neither waits for nor blocks another schema', { skip: !pgEnabled && 'PostgreSQL not reachable' }, async () => {
  const a = freshSchema();
  const b = freshSchema();
  const dir = mkdtempSync(join(tmpdir(), 'herald-migrate-'));
  const holder = new pg.Client({ connectionString: PG_URL, options: `-c search_path="${a}"` });
  await holder.connect();
  const opened: { close(): Promise<void> }[] = [];
  try {
    await holder.query(`CREATE SCHEMA IF NOT EXISTS "${a}"`);
    // Schema a is mid-migration: its lock is held in an open transaction.
    await holder.query('BEGIN');
    await holder.query(MIGRATION_LOCK_SQL);
    const storeB = await openStore({ databaseUrl: PG_URL, databaseSchema: b, dataDir: dir });
    opened.push(storeB);
    const t0 = Date.now();
    const applied = await Promise.race([storeB.migrate(), new Promise<'waited'>((r) => setTimeout(() => r('waited'), 5000))]);
    assert.notEqual(applied, 'waited', 'schema b migrated while schema a held its lock');
    assert.ok(Array.isArray(applied) && applied.length > 0, 'schema b got its migrations');
    assert.ok(Date.now() - t0 < 5000);
    const storeA = await openStore({ databaseUrl: PG_URL, databaseSchema: a, dataDir: dir });
    opened.push(storeA);
    let doneA = false;
    const migratingA = storeA.migrate().then((v) => { doneA = true; return v; });
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(doneA, false, 'a second migration of schema a waits for the first');
    await holder.query('COMMIT');
    assert.ok((await migratingA).length > 0, 'and goes ahead once it is done');
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
    for (const s of opened) await s.close();
    await dropSchema(a);
    await dropSchema(b);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a migration numbered below the latest applied one is still applied, once; a newer schema is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-migrate-order-'));
  const db = new SqliteDb(join(dir, 'm.db'));
  const m = (version: number): Migration => ({ version, name: `00${version}_t.sql`, sql: `CREATE TABLE t${version} (v TEXT)` });
  try {
    assert.deepEqual(await migrate(db, [m(1), m(3)]), [1, 3]);
    // Version 2 arrives later (merged after 3 was released): applied, and 1 and 3 left alone.
    assert.deepEqual(await migrate(db, [m(1), m(2), m(3)]), [2]);
    assert.deepEqual((await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 't_' ORDER BY name")).map((r) => r.name), ['t1', 't2', 't3']);
    assert.deepEqual(await migrate(db, [m(1), m(2), m(3)]), [], 'nothing twice');
    await assert.rejects(migrate(db, [m(1), m(2)]), /schema is at version 3, newer than this Herald knows \(2\)/);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
