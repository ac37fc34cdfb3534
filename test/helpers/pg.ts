import pg from 'pg';
import { randomBytes } from 'node:crypto';

export const PG_URL = process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Set by scripts/test.ts after it has checked the server: '1' runs the PostgreSQL suites. */
export const pgEnabled = process.env.HERALD_TEST_PG === '1';

/** A fresh schema name, so that tests cannot see each other's rows. */
export function freshSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** The engines a parametrised suite runs on. */
export function engines(): ('sqlite' | 'postgres')[] {
  return pgEnabled ? ['sqlite', 'postgres'] : ['sqlite'];
}
