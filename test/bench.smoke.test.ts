// Keeps the benchmark harness from rotting: runs it at tiny sizes and checks that it
// measured every figure. It asserts nothing about speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pgEnabled } from './helpers/pg.ts';

test('npm run bench -- --tiny measures every figure and writes them as JSON', () => {
  const out = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  try {
    const r = spawnSync(process.execPath, ['bench/run.ts', '--tiny', '--out', out, ...(pgEnabled ? [] : ['--no-pg'])], { encoding: 'utf8', timeout: 180_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /machine: \d+ cores/);
    assert.match(r.stdout, /command: npm run bench -- --tiny/);
    const files = readdirSync(out);
    assert.equal(files.length, 1);
    const report = JSON.parse(readFileSync(join(out, files[0]!), 'utf8'));
    assert.equal(report.mode, 'tiny');
    assert.ok(report.results.ceiling.rate > 0);
    for (const k of ['throughput_sqlite', 'latency', 'fanout', 'backlog', 'isolation']) assert.ok(k in report.results, k);
    if (pgEnabled) {
      assert.ok(report.results.throughput_postgres.rate > 0);
      assert.ok(report.results.throughput_postgres.pgServerMicrosPerDelivery > 0, 'the server on this machine was measured');
      const cost = report.results.throughput_postgres.pgCost;
      assert.ok(cost.walBytesPerDelivery > 0 && cost.heapWritesPerDelivery >= 3, 'WAL and row writes per delivery were counted');
      if (report.results.postgres.private) assert.ok(cost.statementsPerDelivery > 0, 'statements were counted on the private server');
      assert.deepEqual(report.results.scaleout.map((s: { processes: number }) => s.processes), [1, 2]);
      for (const s of report.results.scaleout) assert.equal(s.deliveries, 200, `${s.processes} processes delivered every event`);
      assert.ok(report.results.latency_postgres.received > 0);
    }
    const tp = report.results.throughput_sqlite;
    assert.ok(tp.ceilingBefore.rate > 0 && tp.ceilingAfter.rate > 0, 'ceilings around the run');
    assert.ok(tp.cpuMicrosPerDelivery > 0 && tp.ceilingBefore.cpuMicrosPerRequest > 0, 'CPU per delivery and per request');
    assert.equal(report.results.throughput_sqlite.deliveries, 300, 'every event was delivered');
    assert.equal(report.results.fanout.received, 30);
    assert.ok(report.results.latency.received > 0);
    assert.ok(report.results.latency.breakdown.every((b: { p50: number }) => Number.isFinite(b.p50)), 'the store recorded each stage');
    for (const k of ['small', 'smallAfter', 'large']) {
      const b = report.results.backlog[k];
      assert.ok(b.measured >= 200, `backlog ${k}: ${b.measured} of 200`);
      // A drain that counted another's deliveries would finish at once, at an absurd rate.
      assert.ok(b.rate < 100_000, `backlog ${k}: ${b.rate} deliveries/s is not a drain`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
