// Bulk recovery with a big store: seeds deliveries (bench/dashboard.ts's seedDeliveries:
// 1/32 of them failed), then times a tenant-wide recovery job through the admin API on a
// Herald that does not dispatch (the re-queued deliveries stay pending): the creation (it
// counts what matches), each step's transaction (the longest is how long a step holds the
// store) and the whole job at a rate high enough not to be the limit.
//   node bench/recovery.ts [--deliveries 100000] [--engine sqlite|postgres] [--rate 10000]
// Not part of npm test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { Herald, makeLogger } from '../src/herald.ts';
import { SecretBox } from '../src/secrets.ts';
import { recoveryStep, takeRecovery } from '../src/store/queries/recoveries.ts';
import { seedDeliveries } from './dashboard.ts';

const { values: args } = parseArgs({
  options: {
    deliveries: { type: 'string', default: '100000' },
    engine: { type: 'string', default: 'sqlite' },
    rate: { type: 'string', default: '10000' },
  },
});
const ADMIN = 'bench-admin-token';
const dir = mkdtempSync(join(tmpdir(), 'herald-recovery-bench-'));
const schema = `bench_recovery_${process.pid}`;
const pgUrl = process.env.HERALD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const env = {
  HERALD_DATA_DIR: dir, HERALD_PORT: '0', HERALD_ADMIN_TOKEN: ADMIN, HERALD_DISPATCH: 'off', HERALD_LOG_LEVEL: 'warn',
  HERALD_RECOVERY_RATE_PER_SECOND: args.rate, HERALD_POLL_INTERVAL_MS: '60000',
  ...(args.engine === 'postgres' ? { DATABASE_URL: pgUrl, HERALD_DATABASE_SCHEMA: schema } : {}),
};
const config = loadConfig(env);
const herald = new Herald(config, makeLogger(config.logLevel));
await herald.start();
// The bench drives the steps itself, to time each one; the Herald's own runner stays out of the way.
await herald.recoveries?.stop();
try {
  const t0 = performance.now();
  const seeded = await seedDeliveries(herald.store, { deliveries: Number(args.deliveries), box: new SecretBox(config.secretKey) });
  console.log(`seeded ${seeded.deliveries} deliveries in ${((performance.now() - t0) / 1000).toFixed(1)} s (${args.engine})`);
  const tenant = seeded.tenants[0]!;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(herald.url + path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    return res.json() as Promise<any>;
  };
  const c0 = performance.now();
  const job = await call('POST', '/admin/v1/recoveries', { tenant_id: tenant.id, since: '2000-01-01T00:00:00Z' });
  const createMs = performance.now() - c0;
  console.log(`create (counting the matches among ${seeded.deliveries / seeded.tenants.length} of the tenant's deliveries): ${createMs.toFixed(1)} ms, total ${job.total}`);
  const owner = 'bench';
  await takeRecovery(herald.store.db, owner, Date.now(), 60_000);
  const budget = Math.max(1, Math.floor(Number(args.rate) / 10));
  const steps: number[] = [];
  const r0 = performance.now();
  for (;;) {
    const s0 = performance.now();
    const r = await recoveryStep(herald.store, job.id, owner, Date.now(), { leaseMs: 60_000, budget, window: 500 });
    steps.push(performance.now() - s0);
    if (!r.job || r.job.state !== 'running') break;
  }
  const runMs = performance.now() - r0;
  const end = await call('GET', `/admin/v1/recoveries/${job.id}`);
  steps.sort((a, b) => a - b);
  const q = (p: number) => steps[Math.min(steps.length - 1, Math.floor(p * steps.length))]!.toFixed(2);
  console.log(`steps: ${steps.length} (window 500, budget ${budget}); median ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${steps.at(-1)!.toFixed(2)} ms`);
  console.log(`job: ${end.done} re-queued, ${end.skipped} skipped, ${end.state}, in ${runMs.toFixed(0)} ms of steps (${Math.round(end.done / (runMs / 1000))} re-queued/s at most)`);
} finally {
  await herald.stop();
  rmSync(dir, { recursive: true, force: true });
  if (args.engine === 'postgres') {
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: pgUrl });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  }
}
