// How long the dashboard takes to show its deliveries table with 100,000 deliveries in the
// store: from navigation to the table rendered (the page's `herald:deliveries-rendered`
// performance mark), in Debian's Chromium, each run in a fresh browser context (no cache).
// Then, in the same page, opening a delivery, filtering by status and paging on. The API
// alone, filter by filter, is bench/dashboard.ts; this one seeds with its seedDeliveries.
//   node bench/dashboard-load.ts [--deliveries 100000] [--runs 7] [--engine sqlite|postgres]
// Not part of npm test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { loadConfig } from '../src/config.ts';
import { Herald, makeLogger } from '../src/herald.ts';
import { seedDeliveries } from './dashboard.ts';

const { values: args } = parseArgs({
  options: {
    deliveries: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '7' },
    engine: { type: 'string', default: 'sqlite' },
  },
});
const TOTAL = Number(args.deliveries);
const RUNS = Number(args.runs);
const ADMIN = 'bench-admin-token';
const log = (msg: string) => process.stderr.write(`[dashboard-bench] ${msg}\n`);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'herald-dashboard-bench-'));
  const pgUrl = process.env.HERALD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const schema = `dashbench_${process.pid}`;
  // Dispatch off: the deliveries stay as seeded, and nothing is sent while the page is timed.
  const config = loadConfig({
    HERALD_DATA_DIR: dir, HERALD_PORT: '0', HERALD_ADMIN_TOKEN: ADMIN, HERALD_DISPATCH: 'off', HERALD_LOG_LEVEL: 'warn',
    HERALD_ALLOW_PRIVATE_NETWORKS: '127.0.0.0/8',
    ...(args.engine === 'postgres' ? { DATABASE_URL: pgUrl, HERALD_DATABASE_SCHEMA: schema } : {}),
  });
  const herald = new Herald(config, makeLogger(config.logLevel));
  await herald.start();
  try {
    const started = performance.now();
    const seeded = await seedDeliveries(herald.store, { deliveries: TOTAL });
    log(`seeded ${seeded.deliveries} deliveries on ${herald.store.engine} in ${((performance.now() - started) / 1000).toFixed(1)} s (seedDeliveries from bench/dashboard.ts)`);

    const browser = await chromium.launch({ executablePath: process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    const m: Record<'rendered' | 'complete' | 'request' | 'open' | 'filter' | 'older', number[]> = { rendered: [], complete: [], request: [], open: [], filter: [], older: [] };
    try {
      for (let run = 0; run < RUNS; run++) {
        const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        await context.addInitScript((token) => sessionStorage.setItem('herald.dashboard.token', token), ADMIN);
        const page = await context.newPage();
        await page.goto(`${herald.url}/dashboard/`);
        // The page marks the moment its first deliveries table is in the document, and the
        // moment the subscriptions' URLs and the catalog have filled it in.
        const mark = (name: string) => page.evaluate((n) => new Promise<number>((ok) => {
          const look = () => {
            const e = performance.getEntriesByName(n)[0];
            if (e) ok(e.startTime); else setTimeout(look, 5);
          };
          look();
        }), name);
        const ms = await mark('herald:deliveries-rendered');
        m.complete.push(await mark('herald:deliveries-complete'));
        const table = page.getByRole('table', { name: 'Deliveries' });
        const rows = await table.locator('tbody tr').count();
        if (rows !== 50) throw new Error(`the table shows ${rows} rows, not 50`);
        const request = await page.evaluate(() => {
          const r = performance.getEntriesByType('resource').find((e) => /\/admin\/v1\/deliveries\?/.test(e.name)) as PerformanceResourceTiming | undefined;
          return r ? r.responseEnd - r.startTime : -1;
        });
        // Then, as a person would: open a delivery, filter by status, page on. Each is timed
        // from the click to its result on screen (Playwright's round trips included).
        let t = performance.now();
        await table.locator('tbody tr').nth(3).click();
        await page.getByRole('region', { name: 'Delivery details' }).getByRole('heading', { name: /^Attempts/ }).waitFor();
        m.open.push(performance.now() - t);
        t = performance.now();
        await page.getByLabel('Status').selectOption('failed');
        await table.locator('tbody tr').first().filter({ hasText: 'failed' }).waitFor();
        await page.waitForFunction(() => !document.querySelector('table[aria-label="Deliveries"][aria-busy]'));
        m.filter.push(performance.now() - t);
        const older = page.getByRole('button', { name: 'Older →' });
        if (await older.isEnabled()) {
          t = performance.now();
          const top = await table.locator('tbody tr').first().getAttribute('data-id');
          await older.click();
          await page.waitForFunction((id) => document.querySelector('table[aria-label="Deliveries"] tbody tr')?.getAttribute('data-id') !== id, top);
          m.older.push(performance.now() - t);
        }
        m.rendered.push(ms);
        m.request.push(request);
        log(`run ${run + 1}: table rendered ${ms.toFixed(0)} ms after navigation (its request ${request.toFixed(0)} ms), complete ${m.complete.at(-1)!.toFixed(0)} ms; open ${m.open.at(-1)!.toFixed(0)} ms, filter ${m.filter.at(-1)!.toFixed(0)} ms, older ${m.older.at(-1)?.toFixed(0) ?? '-'} ms`);
        await context.close();
      }
    } finally {
      await browser.close();
    }
    const line = (name: string, xs: number[]) => console.log(`  ${name.padEnd(46)} median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`);
    console.log(`\nDashboard with ${seeded.deliveries.toLocaleString('en')} deliveries on ${herald.store.engine}, ${RUNS} runs, a fresh browser context (empty cache) each:`);
    line('navigation -> deliveries table rendered', m.rendered);
    line('  of which its GET /admin/v1/deliveries', m.request);
    line('navigation -> subscription URLs filled in', m.complete);
    line('click a row -> its attempts shown', m.open);
    line('status filter "failed" -> table shown', m.filter);
    if (m.older.length) line('"Older" (page 2 of the filtered list)', m.older);
  } finally {
    await herald.stop();
    rmSync(dir, { recursive: true, force: true });
    if (args.engine === 'postgres') {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    }
  }
}

await main();
