// Ordered delivery per entity, measured (not part of npm test):
//   npx node bench/ordering.ts [--engine sqlite,postgres] [--events 20000] [--entities 1000]
//     [--rounds 3] [--line 500] [--modes none,entity]
// For each engine and round, a fresh Herald process (`herald serve`, as bench/retention.ts
// starts one) on a fresh store, the benchmark's receiver (bench/receiver.ts) in its own
// process, and for each mode one endpoint with that ordering: `events` events spread
// round-robin over `entities` entities are published in batches of 1000, and the rate is
// deliveries received per second from the first publish to the last arrival. The modes run
// one after the other on the same Herald, in turn, so that the machine's load falls on both.
// --line: also one entity alone (`line` events to one entity_id), ordered: the rate one
// entity's line moves at, one delivery at a time (0 leaves it out).
// Prints a table and the median of the rounds; the ratio is ordered / unordered.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { BenchHerald, BenchReceiver } from './children.ts';

const { values: args } = parseArgs({
  options: {
    engine: { type: 'string', default: 'sqlite,postgres' },
    events: { type: 'string', default: '20000' },
    entities: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '3' },
    line: { type: 'string', default: '500' },
    modes: { type: 'string', default: 'none,entity' },
  },
});
const K = Number(args.events);
const E = Number(args.entities);
const LINE = Number(args.line);
const MODES = args.modes.split(',') as ('none' | 'entity')[];
const PG_URL = process.env.HERALD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ADMIN = 'bench-admin-token';
const SECRET_KEY = randomBytes(32).toString('hex');
const log = (msg: string) => process.stderr.write(`[ordering ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Deliveries per second to one endpoint of a tenant of its own, with the given ordering. */
async function run(h: BenchHerald, rx: BenchReceiver, ordering: 'none' | 'entity', events: number, entities: number): Promise<number> {
  const t = await h.call('/admin/v1/tenants', ADMIN, { name: `bench ${ordering}` });
  const prefix = `/${ordering}-${randomBytes(3).toString('hex')}/`;
  // The unordered endpoint is made without the field, as any client that predates it would.
  await h.call('/api/v1/endpoints', t.credentials.api_token, { url: rx.url + prefix, ...(ordering === 'entity' ? { ordering } : {}) });
  const t0 = performance.now();
  for (let i = 0; i < events; i += 1000) {
    const list = Array.from({ length: Math.min(1000, events - i) }, (_, j) => ({
      tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: String((i + j) % entities), data: { seq: Math.floor((i + j) / entities) + 1, pad: 'x'.repeat(400) },
    }));
    await h.call('/admin/v1/events/batch', ADMIN, { events: list });
  }
  while ((await rx.count(prefix)) < events) {
    if (performance.now() - t0 > 600_000) throw new Error(`${ordering}: deliveries did not arrive in 10 minutes`);
    await sleep(5);
  }
  return events / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

const rx = await BenchReceiver.start();
const lines: string[] = [];
try {
  for (const engine of args.engine.split(',') as ('sqlite' | 'postgres')[]) {
    const results = new Map<string, number[]>();
    const add = (k: string, v: number) => results.set(k, [...(results.get(k) ?? []), v]);
    for (let round = 1; round <= Number(args.rounds); round++) {
      const dir = mkdtempSync(join(os.tmpdir(), 'herald-ordering-'));
      const schema = engine === 'postgres' ? `bench_ord_${randomBytes(4).toString('hex')}` : null;
      const where: Record<string, string> = schema ? { DATABASE_URL: PG_URL, HERALD_DATABASE_SCHEMA: schema, HERALD_DATA_DIR: dir } : { HERALD_DATA_DIR: dir };
      const h = await BenchHerald.start({
        ...where, HERALD_ADMIN_TOKEN: ADMIN, HERALD_SECRET_KEY: SECRET_KEY,
        HERALD_ALLOW_PRIVATE_NETWORKS: '127.0.0.0/8', HERALD_LOG_LEVEL: 'warn', HERALD_RETENTION_DAYS: '0',
      });
      try {
        // Alternate which mode goes first, so neither always gets the emptier store.
        const order = round % 2 === 1 ? MODES : [...MODES].reverse();
        for (const mode of order) {
          const r = await run(h, rx, mode, K, E);
          add(mode, r);
          log(`${engine} round ${round}: ${mode === 'entity' ? 'ordered  ' : 'unordered'} ${fmt(r)} deliveries/s (${K} events over ${E} entities)`);
        }
        if (LINE > 0) {
          const r = await run(h, rx, 'entity', LINE, 1);
          add('line', r);
          log(`${engine} round ${round}: one entity's line ${fmt(r)} deliveries/s (${LINE} events to one entity)`);
        }
      } finally {
        await h.stop();
        rmSync(dir, { recursive: true, force: true });
        if (schema) {
          const c = new pg.Client({ connectionString: PG_URL });
          await c.connect();
          await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          await c.end();
        }
      }
    }
    const none = results.get('none');
    const entity = results.get('entity');
    if (none) lines.push(`${engine}: unordered ${fmt(median(none))} deliveries/s (rounds: ${none.map(fmt).join(', ')})`);
    if (entity) lines.push(`${engine}: ordered   ${fmt(median(entity))} deliveries/s (rounds: ${entity.map(fmt).join(', ')})`);
    if (none && entity) lines.push(`${engine}: ordered / unordered ${(median(entity) / median(none)).toFixed(2)} (${K} events over ${E} entities)`);
    const line = results.get('line');
    if (line) lines.push(`${engine}: one entity's line ${fmt(median(line))} deliveries/s (rounds: ${line.map(fmt).join(', ')})`);
  }
} finally {
  rx.child.kill();
}
console.log(`\nnpx node bench/ordering.ts ${process.argv.slice(2).join(' ')}\n  ${lines.join('\n  ')}`);
console.log(`  ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`);
