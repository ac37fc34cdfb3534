// Runs the whole suite with node's test runner. Checks PostgreSQL first: its suites run
// when it answers; in CI (CI=true) it must answer, so they can never be skipped there.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

const url = process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function pgReachable(): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const why = await pgReachable();
const ci = process.env.CI === 'true' || process.env.CI === '1';
if (why !== null) {
  if (ci || process.env.HERALD_TEST_REQUIRE_PG === '1') {
    console.error(`PostgreSQL at ${url} is not reachable (${why}); CI requires the PostgreSQL suites.`);
    process.exit(1);
  }
  console.log(`NOTE: PostgreSQL at ${url} is not reachable (${why}).\nNOTE: the PostgreSQL suites will not run; the SQLite suites will. Start PostgreSQL to run them all.`);
} else {
  console.log(`PostgreSQL at ${url} answers: the PostgreSQL suites run too.`);
}

const files = readdirSync('test').filter((f) => f.endsWith('.test.ts')).sort().map((f) => join('test', f));
const only = process.argv.slice(2);
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...(only.length ? only : files)], {
  stdio: 'inherit',
  env: { ...process.env, HERALD_TEST_PG: why === null ? '1' : '0' },
});
if (why !== null) console.log('NOTE: PostgreSQL suites were not run (PostgreSQL not reachable).');
process.exit(r.status ?? 1);
