// The chaos suite at its small sizes (full sizes: `npm run chaos`). Every scenario in
// test/chaos/scenarios/ runs, side by side: nothing lost, nothing in flight twice at once,
// nothing delivered that Herald did not accept, the store consistent. Duplicates (at least
// once allows them) and recovery times are printed, not asserted.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTable, type ChaosResult } from './chaos/harness.ts';
import { loadScenarios } from './chaos/registry.ts';
import { engines } from './helpers/pg.ts';

const scenarios = await loadScenarios();
const rows: ChaosResult[] = [];

describe('chaos, quick sizes', { concurrency: true }, () => {
  for (const s of scenarios.filter((x) => !x.notInTest)) {
    for (const engine of s.engines) {
      test(`${s.name} (${engine})`, { skip: !engines().includes(engine) && 'PostgreSQL not reachable' }, async (t) => {
        const r = await s.run('quick', engine);
        const list = Array.isArray(r) ? r : [r];
        rows.push(...list);
        for (const row of list) {
          t.diagnostic(JSON.stringify(row));
          assert.ok(row.events > 0, `${row.scenario}: events were accepted`);
          assert.equal(row.lost, 0, `${row.scenario}: nothing lost`);
          assert.equal(row.overlaps, 0, `${row.scenario}: no delivery in flight twice at once`);
          assert.equal(row.unaccepted, 0, `${row.scenario}: nothing delivered that was not accepted`);
          assert.equal(row.unsettled ?? 0, 0, `${row.scenario}: every publish was accepted in the end`);
          assert.equal(row.storeFaults, 0, `${row.scenario}: store consistent (${row.notes ?? ''})`);
        }
      });
    }
  }
});

process.on('exit', () => {
  if (rows.length) console.log(`\n${formatTable(rows)}\n`);
});
