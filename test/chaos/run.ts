// `npm run chaos`: every scenario at full size, then the table. `-- --quick`: the small sizes;
// `-- --only <text>`: scenarios whose name contains the text. Exits 1 when anything was lost,
// overlapped, delivered unaccepted or left inconsistent in the store.
import pg from 'pg';
import { formatTable, type ChaosResult, type Engine, type Size } from './harness.ts';
import { loadScenarios } from './registry.ts';
import { PG_URL } from '../helpers/pg.ts';

const args = process.argv.slice(2);
const size: Size = args.includes('--quick') ? 'quick' : 'full';
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;

async function pgUp(): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try { await c.connect(); await c.query('SELECT 1'); return true; } catch { return false; } finally { await c.end().catch(() => undefined); }
}

const engines: Engine[] = (await pgUp()) ? ['sqlite', 'postgres'] : ['sqlite'];
if (!engines.includes('postgres')) console.log(`NOTE: PostgreSQL at ${PG_URL} is not reachable: its scenarios are skipped.`);
const rows: ChaosResult[] = [];
for (const s of await loadScenarios()) {
  for (const engine of s.engines) {
    if (!engines.includes(engine)) continue;
    if (only && !`${s.name} ${engine}`.includes(only)) continue;
    const t0 = Date.now();
    process.stdout.write(`${s.name} (${engine}, ${size}) ... `);
    try {
      const r = await s.run(size, engine);
      const list = Array.isArray(r) ? r : [r];
      rows.push(...list);
      console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
      for (const row of list) console.log(`  ${JSON.stringify(row)}`);
    } catch (err) {
      console.log('FAILED');
      console.error(err);
      rows.push({ scenario: `${s.name} (${engine})`, events: 0, lost: -1, duplicates: 0, overlaps: 0, unaccepted: 0, storeFaults: 0, maxRecoverMs: 0, notes: `failed: ${(err as Error).message}` });
    }
  }
}
console.log(`\n${formatTable(rows)}\n`);
const bad = rows.filter((r) => r.lost !== 0 || r.overlaps !== 0 || r.unaccepted !== 0 || r.storeFaults !== 0);
process.exit(bad.length ? 1 : 0);
