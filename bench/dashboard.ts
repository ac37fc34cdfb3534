// The dashboard API with a big store: seeds 100,000 deliveries (publish batches, then a
// mix of outcomes and one recorded attempt each, written in bulk), then times
// `GET /admin/v1/deliveries?limit=50` with no filter and with each filter, a page deep in
// the list, and `GET /admin/v1/subscriptions`; on SQLite it also prints the query plan of
// each deliveries list, so a filter that stops using an index shows.
//   node bench/dashboard.ts [--deliveries 100000] [--runs 15] [--engine sqlite|postgres]
// Not part of npm test. `seedDeliveries` is exported for other benches (the page's load time).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config.ts';
import { newStandardSecret } from '../src/dialects/native/rotate.ts';
import type { SubscriptionId, TenantId } from '../src/domain/ids.ts';
import type { NewEvent } from '../src/domain/model.ts';
import type { Dialect } from '../src/domain/states.ts';
import { Herald, makeLogger } from '../src/herald.ts';
import { hashToken, randomToken, SecretBox } from '../src/secrets.ts';
import { DashboardStore, type DeliveryQuery } from '../src/store/queries/dashboard.ts';
import type { SqlStore } from '../src/store/sqlStore.ts';

export interface SeedOptions {
  /** Deliveries to make, about (rounded up to whole events). */
  deliveries?: number;
  tenants?: number;
  /** Each tenant's subscriptions; every event of the tenant goes to each of them. */
  subscriptionsPerTenant?: number;
  /** Seals the subscription secrets; pass the Herald's own to let it send them. A random key otherwise. */
  box?: SecretBox;
  /** Subscription URLs (nothing should listen there unless the caller wants the deliveries). */
  url?: string;
}

export interface Seeded {
  tenants: { id: string; name: string; apiToken: string }[];
  subscriptions: { id: string; tenantId: string; dialect: Dialect }[];
  deliveries: number;
  /** The event types published, `Entity.Event`, in the proportions they were. */
  types: string[];
}

const TYPES: [string, string][] = [['Employee', 'Add'], ['Employee', 'Update'], ['Payroll', 'paid'], ['Employee', 'terminated'], ['BankAccount', 'created']];
const DIALECT_CYCLE: Dialect[] = ['native', 'paycor', 'gusto'];

/**
 * Fills a migrated store with tenants, subscriptions and about `deliveries` deliveries:
 * 15/16 succeeded, 1/32 failed (answered 500), 1/32 pending, each finished one with one
 * attempt carrying request headers, as the dispatcher records them. Runs against the store
 * directly: do it before a Herald that dispatches is pointed at the same database, or the
 * pending ones will be sent.
 */
export async function seedDeliveries(store: SqlStore, o: SeedOptions = {}): Promise<Seeded> {
  const total = o.deliveries ?? 100_000;
  const nTenants = o.tenants ?? 5;
  const perTenant = o.subscriptionsPerTenant ?? 4;
  const box = o.box ?? new SecretBox(Buffer.alloc(32, 7));
  const url = o.url ?? 'http://127.0.0.1:9/hook';
  const out: Seeded = { tenants: [], subscriptions: [], deliveries: 0, types: [] };
  for (let i = 0; i < nTenants; i++) {
    const apiToken = randomToken('hat_', 32);
    const name = `Bench tenant ${i + 1}`;
    const t = await store.createTenant(name, randomToken('hcl_', 16), {
      clientSecretHash: hashToken(randomToken('hcs_', 32)), subscriptionKeyHash: hashToken(randomToken('', 16)), apiTokenHash: hashToken(apiToken),
    });
    out.tenants.push({ id: t.id, name, apiToken });
    for (let j = 0; j < perTenant; j++) {
      const dialect = DIALECT_CYCLE[j % DIALECT_CYCLE.length]!;
      const sub = await store.createSubscription({
        tenantId: t.id, dialect, url: `${url}/${i}/${j}`, description: `bench ${dialect} ${j + 1}`, filters: [], paused: false,
        enabled: true, status: dialect === 'gusto' ? 'verified' : 'active', secrets: [{ enc: box.seal(newStandardSecret()), expiresAt: null }],
        headers: {}, properties: {},
      });
      out.subscriptions.push({ id: sub.id, tenantId: t.id, dialect });
    }
  }
  const events = Math.ceil(total / (nTenants * perTenant));
  const BATCH = 1000;
  for (let done = 0; done < events; done += BATCH) {
    const batch: NewEvent[] = [];
    for (let k = done; k < Math.min(events, done + BATCH); k++) {
      for (const t of out.tenants) {
        const [entity, event] = TYPES[k % TYPES.length]!;
        batch.push({
          tenantId: t.id as TenantId, entity, event, entityId: String(k), entityUri: `v1/${entity.toLowerCase()}s/${k}`, parentType: 'Company', parentId: '7',
          data: { seq: k }, occurredAt: Date.now(), idempotencyKey: null,
        });
      }
    }
    for (const r of await store.publish(batch)) out.deliveries += r.deliveries;
  }
  out.types = TYPES.map(([e, v]) => `${e}.${v}`);
  // Outcomes by the id's last (random) hex digit, then one attempt for each finished delivery.
  const db = store.db;
  await db.tx(async (t) => {
    await t.run(`UPDATE deliveries SET status = CASE WHEN substr(id, 36, 1) = '0' AND substr(id, 35, 1) < '8' THEN 'failed'
        WHEN substr(id, 36, 1) = '0' THEN 'pending' ELSE 'succeeded' END,
      attempts = CASE WHEN substr(id, 36, 1) = '0' AND substr(id, 35, 1) >= '8' THEN 0 ELSE 1 END,
      last_status_code = CASE WHEN substr(id, 36, 1) <> '0' THEN 200 WHEN substr(id, 35, 1) < '8' THEN 500 ELSE NULL END,
      last_error = CASE WHEN substr(id, 36, 1) = '0' AND substr(id, 35, 1) < '8' THEN 'HTTP 500' ELSE NULL END,
      next_attempt_at = CASE WHEN substr(id, 36, 1) = '0' AND substr(id, 35, 1) >= '8' THEN next_attempt_at ELSE NULL END`);
    const headers = JSON.stringify({ 'user-agent': 'Herald/bench', 'content-type': 'application/json', 'webhook-signature': 'v1,bench' });
    await t.run(
      `INSERT INTO attempts (delivery_id, subscription_id, attempt_no, started_at, duration_ms, status_code, error_kind, error, response_body, worker, request_headers)
       SELECT id, subscription_id, 1, created_at, 12, last_status_code, CASE WHEN status = 'failed' THEN 'http_status' ELSE NULL END, NULL,
         CASE WHEN status = 'failed' THEN 'internal error' ELSE 'ok' END, 'bench', $1
       FROM deliveries WHERE status IN ('succeeded', 'failed') ORDER BY id`,
      [headers],
    );
  });
  // PostgreSQL gathers statistics by itself (autovacuum), soon after a bulk load: do it now.
  // Herald never runs ANALYZE on SQLite, so the plans measured are those it really gets.
  if (db.engine === 'postgres') await db.exec('ANALYZE deliveries; ANALYZE attempts; ANALYZE events');
  return out;
}

// ---- the measurement, when run as a script ---------------------------------------------

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      deliveries: { type: 'string', default: '100000' },
      runs: { type: 'string', default: '15' },
      engine: { type: 'string', default: 'sqlite' },
    },
  });
  const ADMIN = 'bench-admin-token';
  const dir = mkdtempSync(join(tmpdir(), 'herald-dashboard-bench-'));
  const schema = `bench_dash_${process.pid}`;
  const pgUrl = process.env.HERALD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const env = {
    HERALD_DATA_DIR: dir, HERALD_PORT: '0', HERALD_ADMIN_TOKEN: ADMIN, HERALD_DISPATCH: 'off', HERALD_LOG_LEVEL: 'warn',
    ...(args.engine === 'postgres' ? { DATABASE_URL: pgUrl, HERALD_DATABASE_SCHEMA: schema } : {}),
  };
  const config = loadConfig(env);
  const herald = new Herald(config, makeLogger(config.logLevel));
  await herald.start();
  try {
    const t0 = performance.now();
    const seeded = await seedDeliveries(herald.store, { deliveries: Number(args.deliveries), box: new SecretBox(config.secretKey) });
    console.log(`${args.engine}: seeded ${seeded.deliveries} deliveries, ${seeded.subscriptions.length} subscriptions, ${seeded.tenants.length} tenants in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const get = async (path: string) => {
      const res = await fetch(herald.url + path, { headers: { authorization: `Bearer ${ADMIN}` } });
      const body = await res.json() as { data: { id: string }[]; next_cursor: string | null };
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
      return body;
    };
    const all = await get('/admin/v1/deliveries?limit=500');
    const mid = all.data[250]!.id;
    // A page a quarter of the way down: follow the cursor there once.
    let deep = '';
    {
      let cursor: string | null = null;
      for (let i = 0; i < Math.floor(seeded.deliveries / 4 / 500); i++) {
        const p: { next_cursor: string | null } = await get(`/admin/v1/deliveries?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
        cursor = p.next_cursor;
      }
      deep = cursor ?? '';
    }
    const row = await herald.store.db.all<{ created_at: number }>('SELECT created_at FROM deliveries ORDER BY id LIMIT 1 OFFSET $1', [Math.floor(seeded.deliveries * 0.9)]);
    const since = new Date(Number(row[0]!.created_at)).toISOString();
    const until = new Date(Number(row[0]!.created_at) + 200).toISOString();
    const tenant = seeded.tenants[2]!.id;
    const sub = seeded.subscriptions[5]!.id;
    const cases: [string, string][] = [
      ['no filter', '/admin/v1/deliveries?limit=50'],
      ['tenant_id', `/admin/v1/deliveries?limit=50&tenant_id=${tenant}`],
      ['subscription_id', `/admin/v1/deliveries?limit=50&subscription_id=${sub}`],
      ['event_id', `/admin/v1/deliveries?limit=50&event_id=${(await get(`/admin/v1/deliveries/${mid}`) as unknown as { event_id: string }).event_id}`],
      ['status=failed (1/32)', '/admin/v1/deliveries?limit=50&status=failed'],
      ['status=succeeded', '/admin/v1/deliveries?limit=50&status=succeeded'],
      ['event_type (1/5)', '/admin/v1/deliveries?limit=50&event_type=Payroll.paid'],
      ['event_type, none match', '/admin/v1/deliveries?limit=50&event_type=Company.approved'],
      ['since (newest 10%)', `/admin/v1/deliveries?limit=50&since=${since}`],
      ['since + until (200 ms)', `/admin/v1/deliveries?limit=50&since=${since}&until=${until}`],
      ['tenant + status=failed + event_type', `/admin/v1/deliveries?limit=50&tenant_id=${tenant}&status=failed&event_type=Employee.Add`],
      ['a page 25% down (cursor)', `/admin/v1/deliveries?limit=50&cursor=${deep}`],
      ['GET /admin/v1/subscriptions', '/admin/v1/subscriptions'],
      ['GET /admin/v1/subscriptions?status=failing', '/admin/v1/subscriptions?status=failing'],
    ];
    const runs = Number(args.runs);
    console.log(`\nmedian and worst of ${runs} runs after one warm-up, over HTTP on loopback:`);
    for (const [name, path] of cases) {
      await get(path);
      const times: number[] = [];
      let n = 0;
      for (let i = 0; i < runs; i++) {
        const a = performance.now();
        n = (await get(path)).data.length;
        times.push(performance.now() - a);
      }
      times.sort((x, y) => x - y);
      console.log(`  ${name.padEnd(44)} ${times[Math.floor(runs / 2)]!.toFixed(1).padStart(7)} ms  (worst ${times.at(-1)!.toFixed(1)} ms, ${n} rows)`);
    }
    if (herald.store.engine === 'sqlite') {
      console.log('\nSQLite query plans of the deliveries list (the statements the store runs):');
      const d = herald.store.db;
      const dash = new DashboardStore(herald.store);
      const plans: [string, DeliveryQuery][] = [
        ['no filter', { limit: 50 }],
        ['tenant_id', { tenantId: tenant as TenantId, limit: 50 }],
        ['subscription_id', { subscriptionId: sub as SubscriptionId, limit: 50 }],
        ['status=failed', { status: 'failed', limit: 50 }],
        ['status=succeeded', { status: 'succeeded', limit: 50 }],
        ['event_type', { eventType: { entity: 'Payroll', event: 'paid' }, limit: 50 }],
        ['since + until', { since: Date.parse(since), until: Date.parse(until), limit: 50 }],
        ['tenant + status=failed + type', { tenantId: tenant as TenantId, status: 'failed', eventType: { entity: 'Employee', event: 'Add' }, limit: 50 }],
      ];
      for (const [name, q] of plans) {
        const { sql, params } = dash.deliveriesSql(q);
        const rows = await d.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`, params);
        console.log(`  ${name.padEnd(30)} ${rows.map((r) => r.detail).join(' | ')}`);
      }
    }
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
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
