// What an open circuit breaker costs the claim (not part of npm test):
//   npx node bench/claimSkip.ts [--engine sqlite,postgres] [--skipped 0,1000,10000,100000] [--claims 50] [--aside]
// For each engine and each size: one subscription with `skipped` due deliveries, all due
// before any of the other's, is left out of every claim (room 0, as an open breaker leaves
// it); the other subscription's due deliveries are claimed `claims` times, 100 at a time, and
// each claim's outcomes recorded. Prints the mean and 95th percentile of a claim's time, and
// how many rows each claim returned, so that the cost of passing over the skipped rows shows.
// --aside: the skipped deliveries are first set aside as the dispatcher does behind an open
// breaker (all but the oldest 100 moved ahead), and the time that takes is printed too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { uuidv7 } from '../src/domain/ids.ts';
import { insertMany, type Param } from '../src/store/db.ts';
import { openStore } from '../src/store/open.ts';
import { setAside } from '../src/store/queries/breaker.ts';
import { dropSchema, freshSchema, PG_URL } from '../test/helpers/pg.ts';

const { values: args } = parseArgs({
  options: {
    engine: { type: 'string', default: 'sqlite,postgres' },
    skipped: { type: 'string', default: '0,1000,10000,100000' },
    claims: { type: 'string', default: '50' },
    /** Set the skipped deliveries aside first (src/store/queries/breaker.ts), as Herald does. */
    aside: { type: 'boolean', default: false },
  },
});

const BATCH = 100;

async function run(engine: 'sqlite' | 'postgres', skipped: number, claims: number) {
  const dir = mkdtempSync(join(tmpdir(), 'herald-claimskip-'));
  const schema = freshSchema();
  const store = await openStore({ databaseUrl: engine === 'postgres' ? PG_URL : null, databaseSchema: schema, dataDir: dir });
  try {
    await store.migrate();
    const tenant = await store.createTenant('T', `c-${schema}`, { clientSecretHash: 'a', subscriptionKeyHash: `k-${schema}`, apiTokenHash: `t-${schema}` });
    const sub = () => store.createSubscription({
      tenantId: tenant.id, dialect: 'native', url: 'http://127.0.0.1:9/', description: '', filters: [], paused: false, enabled: true,
      status: 'active', secrets: [], headers: {}, properties: {},
    });
    const open = await sub();
    const healthy = await sub();
    const now = Date.now();
    const eventId = uuidv7();
    await store.db.run(
      `INSERT INTO events (id, tenant_id, entity, event, entity_id, data, occurred_at, created_at) VALUES ($1, $2, 'Employee', 'Add', '1', '{}', $3, $3)`,
      [eventId, tenant.id, now],
    );
    const rows = (subId: string, n: number, dueFrom: number): Param[][] =>
      Array.from({ length: n }, (_, i) => [uuidv7(), tenant.id, eventId, subId, 'pending', 1, dueFrom + i, now, now]);
    const cols = ['id', 'tenant_id', 'event_id', 'subscription_id', 'status', 'attempts', 'next_attempt_at', 'created_at', 'updated_at'];
    // The skipped ones are all due before the healthy ones, as deliveries waiting behind a breaker are.
    await store.db.tx(async (t) => {
      await insertMany(t, 'deliveries', cols, rows(open.id, skipped, now - 10_000_000));
      await insertMany(t, 'deliveries', cols, rows(healthy.id, claims * BATCH, now - 1_000_000));
    });
    if (engine === 'postgres') await store.db.exec('ANALYZE deliveries');
    let aside = '';
    if (args.aside) {
      // As the dispatcher does when the breaker opens: all but the oldest 100 set aside.
      const t0 = performance.now();
      const n = await setAside(store, open.id, now + 60_000, 100);
      aside = `, ${n} set aside in ${(performance.now() - t0).toFixed(1)} ms`;
    }
    const room = { bySubscription: new Map([[open.id, 0]]), otherwise: BATCH };
    const times: number[] = [];
    let got = 0;
    for (let i = 0; i < claims; i++) {
      const t0 = performance.now();
      const c = await store.claimDue(BATCH, 60_000, room);
      times.push(performance.now() - t0);
      got += c.length;
      if (c.some((x) => x.subscription.id === open.id)) throw new Error('a skipped subscription was claimed');
      await store.completeMany(c.map((claim) => ({ claim, attempt: { startedAt: Date.now(), durationMs: 1, statusCode: 200, errorKind: null, error: null, responseBody: null, worker: 'bench' }, outcome: { kind: 'succeeded' as const } })));
    }
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const p95 = times[Math.floor(times.length * 0.95)]!;
    console.log(`${engine.padEnd(8)} skipped ${String(skipped).padStart(7)}: claim of ${BATCH} mean ${mean.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms (${(got / claims).toFixed(0)} rows a claim${aside})`);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    if (engine === 'postgres') await dropSchema(schema);
  }
}

for (const engine of args.engine!.split(',') as ('sqlite' | 'postgres')[]) {
  for (const n of args.skipped!.split(',').map(Number)) await run(engine, n, Number(args.claims));
}
