// Starts a Herald on a temp dir with a little sample traffic, opens the operator view in
// Chromium with one delivery open, and saves docs/dashboard.png for the README.
//   node scripts/screenshot.ts [--out docs/dashboard.png] [--keep]
// --keep leaves Herald running (prints its URL and admin token) to look at by hand.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { loadConfig } from '../src/config.ts';
import { Herald, makeLogger } from '../src/herald.ts';

const { values: args } = parseArgs({ options: { out: { type: 'string', default: 'docs/dashboard.png' }, keep: { type: 'boolean', default: false } } });
const ADMIN = 'screenshot-admin-token';

/** One receiver for every sample endpoint; the path says how it behaves. */
async function receiver(): Promise<{ server: Server; base: string }> {
  const seen = new Map<string, number>();
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url ?? '/';
      const n = (seen.get(path) ?? 0) + 1;
      seen.set(path, n);
      if (path.startsWith('/webhooks/payroll')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
      // Every third request fails once, so some deliveries show a failed attempt then a success.
      if (path.startsWith('/webhooks/crm')) {
        if (n % 3 === 1) return void res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"database is locked","request_id":"a81f3c"}');
        return void res.writeHead(202, { 'content-type': 'text/plain' }).end('accepted');
      }
      res.writeHead(503, { 'content-type': 'text/html' }).end('<html><body><h1>503 Service Unavailable</h1>upstream connect error</body></html>');
    });
  });
  // A fixed, readable port when it is free; any port otherwise.
  await new Promise<void>((ok) => {
    server.once('error', () => server.listen(0, '127.0.0.1', ok));
    server.listen(9000, '127.0.0.1', ok);
  });
  return { server, base: `http://localhost:${(server.address() as AddressInfo).port}` };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'herald-screenshot-'));
  const config = loadConfig({
    HERALD_DATA_DIR: dir, HERALD_PORT: '0', HERALD_ADMIN_TOKEN: ADMIN, HERALD_ALLOW_PRIVATE_NETWORKS: '127.0.0.0/8,::1/128',
    HERALD_RETRY_SCHEDULE: '0.3,0.6,600', HERALD_RETRY_JITTER: '0', HERALD_POLL_INTERVAL_MS: '100', HERALD_LOG_LEVEL: 'warn',
  });
  const herald = new Herald(config, makeLogger(config.logLevel));
  await herald.start();
  const rx = await receiver();
  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(herald.url + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const out = await res.json().catch(() => null);
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(out)}`);
    return out;
  };

  const tenants: { id: string; token: string }[] = [];
  const plan: [string, string[]][] = [
    ['Acme Payroll', ['/webhooks/payroll', '/webhooks/crm']],
    ['Globex', ['/webhooks/crm/globex']],
    ['Initech', ['/hooks/legacy']],
  ];
  for (const [name, paths] of plan) {
    const t = await call('POST', '/admin/v1/tenants', ADMIN, { name });
    tenants.push({ id: t.id, token: t.credentials.api_token });
    for (const p of paths) await call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.base + p, description: `${name} ${p.split('/').pop()} sync` });
  }
  const types = [['Employee', 'Add'], ['Employee', 'Update'], ['Payroll', 'paid'], ['Employee', 'terminated'], ['BankAccount', 'created']];
  const events = Array.from({ length: 36 }, (_, i) => {
    const [entity, event] = types[i % types.length]!;
    return { tenant_id: tenants[i % tenants.length]!.id, entity, event, entity_id: String(1000 + i), data: { id: 1000 + i } };
  });
  for (let i = 0; i < events.length; i += 6) {
    await call('POST', '/admin/v1/events/batch', ADMIN, { events: events.slice(i, i + 6) });
    await new Promise((ok) => setTimeout(ok, 150));
  }
  // Let the first retries happen: a delivery that failed once then succeeded is the one opened.
  await new Promise((ok) => setTimeout(ok, 1500));

  if (args.keep) {
    console.log(`Herald at ${herald.url}/dashboard/  admin token: ${ADMIN}`);
    console.log(`tenant api tokens: ${tenants.map((t) => t.token).join('  ')}`);
    process.on('SIGINT', async () => { await herald.stop(); rx.server.close(); rmSync(dir, { recursive: true, force: true }); process.exit(0); });
    return;
  }

  const browser = await chromium.launch({ executablePath: process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    await page.goto(`${herald.url}/dashboard/`);
    await page.getByLabel('Token').fill(ADMIN);
    await page.getByRole('button', { name: 'Log in' }).click();
    const table = page.getByRole('table', { name: 'Deliveries' });
    await table.locator('tbody tr').first().waitFor();
    // The newest delivery that took two attempts: a failure, then a success.
    const twice = table.locator('tbody tr').filter({ has: page.locator('td.attempts-cell > span:first-child', { hasText: /^2$/ }) }).first();
    await (await twice.count() ? twice : table.locator('tbody tr').first()).click();
    await page.getByRole('list', { name: 'Attempts' }).waitFor();
    await page.waitForTimeout(300);
    mkdirSync(dirname(args.out!), { recursive: true });
    await page.screenshot({ path: args.out!, type: 'png' });
    console.log(`saved ${args.out}`);
  } finally {
    await browser.close();
    await herald.stop();
    rx.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
