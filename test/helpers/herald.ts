import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Env } from '../../src/config.ts';
import { Herald, makeLogger } from '../../src/herald.ts';
import type { Clock } from '../../src/domain/clock.ts';
import { dropSchema, freshSchema, PG_URL } from './pg.ts';

export const ADMIN = 'test-admin-token';

export interface TestHerald {
  herald: Herald;
  url: string;
  env: Env;
  /** Calls the admin API; answers status and parsed body. */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Calls Herald with a given bearer token. */
  call(method: string, path: string, token: string | null, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  /** A new tenant and its credentials. */
  tenant(name?: string): Promise<{ id: string; number: number; credentials: { client_id: string; client_secret: string; subscription_key: string; api_token: string } }>;
  publish(event: Record<string, unknown>): Promise<any>;
  stop(): Promise<void>;
}

/** Environment for a Herald on a fresh temp dir (and a fresh PostgreSQL schema when asked). */
export function testEnv(engine: 'sqlite' | 'postgres', extra: Env = {}): { env: Env; cleanup: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'herald-test-'));
  const schema = engine === 'postgres' ? freshSchema() : null;
  const env: Env = {
    HERALD_DATA_DIR: dir,
    HERALD_PORT: '0',
    HERALD_ADMIN_TOKEN: ADMIN,
    HERALD_ALLOW_PRIVATE_NETWORKS: '127.0.0.0/8',
    HERALD_RETRY_SCHEDULE: '0.1,0.2,0.4',
    HERALD_POLL_INTERVAL_MS: '200',
    HERALD_REQUEST_TIMEOUT_MS: '3000',
    HERALD_LEASE_SECONDS: '10',
    HERALD_SHUTDOWN_GRACE_MS: '2000',
    // Off unless a test asks for it (test/breaker.test.ts, the misbehaving-receivers scenario):
    // with it, a receiver failing on purpose gets one probe at a time, and tests that wait for
    // deliveries to run out of retries would wait for the probes.
    HERALD_BREAKER_FAILURES: '0',
    HERALD_LOG_LEVEL: process.env.HERALD_TEST_LOG_LEVEL ?? 'silent',
    ...(schema ? { DATABASE_URL: PG_URL, HERALD_DATABASE_SCHEMA: schema } : {}),
    ...extra,
  };
  return {
    env,
    cleanup: async () => {
      rmSync(dir, { recursive: true, force: true });
      if (schema) await dropSchema(schema);
    },
  };
}

/** `opts.clock`: a clock the test steps (src/domain/clock.ts), instead of the system's. */
export async function startHerald(engine: 'sqlite' | 'postgres', extra: Env = {}, opts: { clock?: Clock } = {}): Promise<TestHerald> {
  const { env, cleanup } = testEnv(engine, extra);
  const config = loadConfig(env);
  const herald = new Herald(config, makeLogger(config.logLevel), opts);
  await herald.start();
  const url = herald.url;
  const call: TestHerald['call'] = async (method, path, token, body, headers = {}) => {
    const h: Record<string, string> = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const res = await fetch(url + path, { method, headers: h, body: payload });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  const t: TestHerald = {
    herald, url, env, call,
    admin: (method, path, body) => call(method, path, ADMIN, body),
    async tenant(name = 'Acme') {
      const r = await call('POST', '/admin/v1/tenants', ADMIN, { name });
      if (r.status !== 201) throw new Error(`tenant: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async publish(event) {
      const r = await call('POST', '/admin/v1/events', ADMIN, event);
      if (r.status !== 202) throw new Error(`publish: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async stop() {
      await herald.stop();
      await cleanup();
    },
  };
  return t;
}
