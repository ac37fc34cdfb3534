// Which driver errors mean "the store is unavailable", met for real: a refused connection, a
// session the server terminates inside a transaction, SQLite's own SQLITE_FULL (a page limit)
// and SQLITE_BUSY (a second connection holding the write lock). No root or private server
// needed: test/storeOutage.test.ts does the whole-process version.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { StoreUnavailableError, ValidationError } from '../src/domain/errors.ts';
import { toFailure } from '../src/http/errors.ts';
import { PostgresDb } from '../src/store/postgres/db.ts';
import { SqliteDb } from '../src/store/sqlite/db.ts';
import { pgUnavailable, sqliteUnavailable } from '../src/store/unavailable.ts';
import { PG_URL, pgEnabled } from './helpers/pg.ts';
import { freePort } from './helpers/freePort.ts';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const tempDb = () => {
  const d = mkdtempSync(join(tmpdir(), 'herald-storeerr-'));
  dirs.push(d);
  return join(d, 'herald.db');
};

describe('StoreUnavailableError as an HTTP answer', () => {
  test('503 for a store that cannot be reached, 507 for a full disk, both with Retry-After; anything else stays a 500', () => {
    const down = toFailure(new StoreUnavailableError('unreachable', 'the database cannot be reached'));
    assert.deepEqual([down.status, down.code, down.retryAfterSeconds], [503, 'store_unavailable', 5]);
    const full = toFailure(new StoreUnavailableError('full', 'the disk holding the database is full'));
    assert.deepEqual([full.status, full.code, full.retryAfterSeconds], [507, 'insufficient_storage', 5]);
    assert.match(full.message, /disk holding the database is full; try again later/);
    assert.equal(toFailure(new Error('a bug')).status, 500);
    assert.equal(toFailure(new ValidationError('x', 'is wrong')).retryAfterSeconds, undefined);
  });
});

describe('PostgreSQL errors', () => {
  test('a refused connection, through the Db seam, for a query and a transaction', async () => {
    const url = `postgres://postgres@127.0.0.1:${await freePort()}/none`;
    const pool = new pg.Pool({ connectionString: url, connectionTimeoutMillis: 2000 });
    const db = new PostgresDb(pool);
    try {
      await assert.rejects(db.all('SELECT 1'), (e: unknown) => e instanceof StoreUnavailableError && e.reason === 'unreachable' && (e.cause as { code?: string }).code === 'ECONNREFUSED');
      await assert.rejects(db.tx((t) => t.all('SELECT 1')), StoreUnavailableError);
    } finally {
      await db.close();
    }
  });

  test('errors about the statement or the data are not availability', () => {
    for (const code of ['42601', '23505', '22P02', '40P01']) {
      assert.equal(pgUnavailable(Object.assign(new Error('x'), { code })), null, code);
    }
    for (const code of ['57P01', '57P02', '57P03', '08006', '53300', 'ECONNRESET']) {
      assert.equal(pgUnavailable(Object.assign(new Error('x'), { code }))?.reason, 'unreachable', code);
    }
    assert.equal(pgUnavailable(Object.assign(new Error('x'), { code: '53100' }))?.reason, 'full');
    assert.equal(pgUnavailable(new Error('Connection terminated unexpectedly'))?.reason, 'unreachable');
  });

  test('the server ending the session inside a transaction: StoreUnavailableError, the process lives, the pool recovers', { skip: !pgEnabled && 'PostgreSQL not reachable' }, async () => {
    // Only this test's own session is terminated; the shared server goes on.
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
    pool.on('error', () => undefined);
    const db = new PostgresDb(pool);
    try {
      await assert.rejects(db.tx(async (t) => {
        await t.all('SELECT pg_terminate_backend(pg_backend_pid())');
      }), (e: unknown) => e instanceof StoreUnavailableError);
      // The dead client left the pool: the next transaction gets a working one.
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(await db.tx((t) => t.all<{ n: number }>('SELECT 1 AS n')), [{ n: 1 }]);
      assert.equal(pool.totalCount, 1, 'the broken client was not handed back out');
    } finally {
      await db.close();
    }
  });

  test('53100 (out of disk) is "full" until a statement that was refused changes rows again; other writes that fit prove nothing', { skip: !pgEnabled && 'PostgreSQL not reachable' }, async () => {
    // The server itself raises 53100 while a flag row says so, as a table that cannot extend
    // would, while an update of a row already stored still fits (test/storeOutage.test.ts
    // fills a real tablespace; this one is deterministic).
    const schema = `storeerr_${process.pid}`;
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${schema}` });
    const db = new PostgresDb(pool);
    const insert = 'INSERT INTO rows (v) SELECT $1 WHERE refuse() RETURNING v';
    try {
      await db.exec(`CREATE SCHEMA ${schema}`);
      await db.exec(`CREATE TABLE flag (refusing boolean NOT NULL); INSERT INTO flag VALUES (false);
        CREATE TABLE rows (v text); CREATE TABLE other (n int); INSERT INTO other VALUES (0);
        CREATE FUNCTION refuse() RETURNS boolean LANGUAGE plpgsql AS $$
          BEGIN IF (SELECT refusing FROM flag) THEN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END IF; RETURN true; END $$`);
      await db.run('UPDATE flag SET refusing = true');
      await assert.rejects(db.all(insert, ['a']), (e: unknown) => e instanceof StoreUnavailableError && e.reason === 'full');
      assert.match(String(db.writesRefused()?.message), /out of disk space/);
      await db.relaxed.run('UPDATE other SET n = n + 1');
      await db.tx((t) => t.run('UPDATE other SET n = n + 1'));
      assert.ok(db.writesRefused(), 'a write that fitted where the refused one did not is no sign of space');
      await db.run('UPDATE flag SET refusing = false');
      await db.tx((t) => t.all(insert, ['b']));
      assert.equal(db.writesRefused(), null, 'the refused statement changed rows: space is back');
      assert.deepEqual(await db.all('SELECT v FROM rows'), [{ v: 'b' }]);
    } finally {
      await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await db.close();
    }
  });
});

describe('SQLite errors', () => {
  test('SQLITE_FULL (a page limit) is "full"; writes are refused until a write changes rows again', async () => {
    const db = new SqliteDb(tempDb());
    try {
      await db.exec('CREATE TABLE t (v TEXT)');
      const pages = (await db.all<{ n: number }>('SELECT page_count AS n FROM pragma_page_count()'))[0]!.n;
      assert.ok(pages > 0);
      await db.exec(`PRAGMA max_page_count = ${pages}`);
      const big = 'x'.repeat(20_000);
      await assert.rejects(db.tx((t) => t.run('INSERT INTO t VALUES ($1)', [big])), (e: unknown) => e instanceof StoreUnavailableError && e.reason === 'full');
      await assert.rejects(db.run('INSERT INTO t VALUES ($1)', [big]), (e: unknown) => e instanceof StoreUnavailableError && e.reason === 'full');
      assert.match(String(db.writesRefused()?.message), /disk holding the database is full/);
      // Reads still work, and a transaction that writes nothing proves nothing about space.
      assert.equal((await db.all<{ n: number }>('SELECT COUNT(*) AS n FROM t'))[0]!.n, 0);
      await db.tx((t) => t.all('SELECT 1'));
      assert.ok(db.writesRefused(), 'still refused');
      await db.exec('PRAGMA max_page_count = 1000000');
      await db.tx((t) => t.run('INSERT INTO t VALUES ($1)', [big]));
      assert.equal(db.writesRefused(), null, 'a write that changed rows clears it');
      assert.equal((await db.all<{ n: number }>('SELECT COUNT(*) AS n FROM t'))[0]!.n, 1, 'the refused ones left nothing');
    } finally {
      await db.close();
    }
  });

  test('SQLITE_BUSY (another connection holds the write lock) is "unreachable"; a bad statement is not availability', () => {
    const path = tempDb();
    const a = new DatabaseSync(path);
    const b = new DatabaseSync(path);
    try {
      a.exec('PRAGMA journal_mode = WAL; CREATE TABLE t (v)');
      a.exec('BEGIN IMMEDIATE');
      let busy: unknown;
      try { b.exec('BEGIN IMMEDIATE'); } catch (e) { busy = e; }
      assert.equal(sqliteUnavailable(busy)?.reason, 'unreachable');
      let bad: unknown;
      try { b.exec('SELECT * FROM nowhere'); } catch (e) { bad = e; }
      assert.ok(bad);
      assert.equal(sqliteUnavailable(bad), null);
      a.exec('ROLLBACK');
    } finally {
      a.close();
      b.close();
    }
  });
});
