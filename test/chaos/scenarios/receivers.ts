// Receivers that misbehave beside healthy ones: a reset mid-body, an answer that never ends
// (slow loris), bytes that are not HTTP, long stalls, 429 storms with Retry-After, and 500s,
// each for a while and then well again. Every event must reach every route once the bad ones
// recover, and the healthy routes' throughput is measured alone and beside the bad ones.
import { HeraldProcess } from '../../helpers/child.ts';
import { testEnv } from '../../helpers/herald.ts';
import { behaviours, chaosEnv, checkStore, explain, Ledger, RecordingReceiver, type Action, type ChaosResult, type Engine, type Scenario, type Size } from '../harness.ts';

/**
 * Delays doubling from 0.1 s up to `capS`, covering at least `totalS` seconds. A 429 with
 * Retry-After uses up no retry while the delivery is younger than that, and deliveries
 * waiting behind an open breaker none at all, so the spell needs time, not a retry a second.
 */
function retrySchedule(capS: number, totalS: number): string[] {
  const out: string[] = [];
  let d = 0.1, sum = 0;
  while (sum < totalS) { out.push(String(d)); sum += d; d = Math.min(capS, d * 2); }
  return out;
}

async function misbehaving(engine: Engine, size: Size): Promise<ChaosResult> {
  const quick = size === 'quick';
  // Quick: the request timeout is shortened so that a stall outlives it in seconds, not minutes.
  const timeoutMs = quick ? 1000 : 10_000;
  const badMs = quick ? 3000 : 30_000;
  const healthyEvents = quick ? 300 : 4000;
  const badEvents = quick ? 150 : 1500;
  const rx = await RecordingReceiver.start();
  const { env, cleanup } = testEnv(engine, chaosEnv({
    HERALD_REQUEST_TIMEOUT_MS: String(timeoutMs),
    // An attempt can take twice the timeout (headers, then a slow body). Quick: 2 s of 2.5 left
    // half a second for a loaded machine's event loop, and the full suite once saw a lease run
    // out under a loris that was still being read (2 deliveries in flight twice).
    HERALD_LEASE_SECONDS: String(Math.max(timeoutMs * 2.5, 5000) / 1000),
    // Doubling as the default schedule does, but capped low (8 s; quick 2 s) so that the bad
    // routes recover soon after their spell, and lasting a minute longer than it.
    HERALD_RETRY_SCHEDULE: retrySchedule(quick ? 2 : 8, badMs / 1000 + 60).join(','),
    HERALD_POLL_INTERVAL_MS: '200',
    // The circuit breaker as it is by default (the test environment turns it off).
    HERALD_BREAKER_FAILURES: '5',
  }));
  let p: HeraldProcess | null = null;
  try {
    p = await HeraldProcess.start(env);
    const base = p.url;
    const ledger = new Ledger();
    const good = await ledger.tenant(base, 'Healthy');
    const healthy = ['h1', 'h2'];
    for (const r of healthy) await ledger.subscribe(base, good, rx.route(r, behaviours.healthy(5)));

    // Phase 1: the healthy routes alone.
    const t1 = Date.now();
    await ledger.publish(() => base, good, healthyEvents, { batch: 500, concurrency: 2 }).done;
    if ((await ledger.drained(rx, quick ? 30_000 : 120_000)) < 0) throw new Error('the healthy routes did not drain alone');
    const aloneMs = rx.lastFirstAck(healthy) - t1;

    const phase1Requests = rx.allRoutes().reduce((n, r) => n + r.total, 0);
    // Phase 2: the same again, beside the bad routes, which misbehave from now for badMs.
    const bad = await ledger.tenant(base, 'Misbehaving');
    const from = Date.now() - rx.startedAt;
    const kinds: [string, Action][] = [
      ['reset', { kind: 'reset' }],
      ['loris', { kind: 'loris', everyMs: Math.round(timeoutMs / 4) }],
      ['garbage', { kind: 'garbage' }],
      ['stall', { kind: 'stall', ms: quick ? 3000 : 30_000 }],
      ['storm429', { kind: 'status', status: 429, retryAfter: '1' }],
      ['fail500', { kind: 'status', status: 500 }],
    ];
    for (const [name, action] of kinds) await ledger.subscribe(base, bad, rx.route(name, behaviours.window(action, badMs, from)));
    const t2 = Date.now();
    const badRun = ledger.publish(() => base, bad, badEvents, { batch: 500, concurrency: 1 });
    await ledger.publish(() => base, good, healthyEvents, { batch: 500, concurrency: 2 }).done;
    await badRun.done;
    const goodDrained = await (async () => {
      const end = Date.now() + (quick ? 30_000 : 120_000);
      while (Date.now() < end) {
        if (!ledger.missing(rx).some((m) => healthy.includes(m.route))) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    })();
    if (!goodDrained) throw new Error('the healthy routes did not drain beside the bad ones');
    const besideMs = rx.lastFirstAck(healthy) - t2;
    // Every request the receiver took meanwhile (healthy and bad, answered or not): tells a
    // busy receiver or sender from a slow store.
    const requestsBeside = rx.allRoutes().reduce((n, r) => n + r.total, 0) - phase1Requests;
    const drainMs = await ledger.drained(rx, quick ? 60_000 : 300_000);
    const recoverMs = drainMs < 0 ? -1 : Math.max(0, rx.lastFirstAck(kinds.map(([n]) => n)) - (rx.startedAt + from + badMs));
    const store = await checkStore(env, rx);
    const alone = (healthyEvents * healthy.length) / (aloneMs / 1000);
    const beside = (healthyEvents * healthy.length) / (besideMs / 1000);
    const notes = size === 'full'
      ? `healthy ${Math.round(alone)}/s alone, ${Math.round(beside)}/s beside the bad (ratio ${(beside / alone).toFixed(2)}); all requests meanwhile ${Math.round(requestsBeside / (besideMs / 1000))}/s; bad for ${badMs / 1000} s`
      : `6 kinds bad for ${badMs / 1000} s, healthy ratio ${(beside / alone).toFixed(2)} (not asserted)`;
    await explain(env, rx);
    return ledger.result(`misbehaving receivers beside healthy, ${engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`, rx, { store, recoverMs, notes });
  } finally {
    if (p) { p.kill('SIGKILL'); await p.exited; }
    await rx.stop();
    await cleanup();
  }
}

export const scenarios: Scenario[] = [
  { name: 'misbehaving receivers', engines: ['sqlite', 'postgres'], run: (size, engine) => misbehaving(engine, size) },
];
