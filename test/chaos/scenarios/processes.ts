// Herald processes dying under load: kill -9 at random moments (SQLite, one process; PostgreSQL,
// two processes sharing the work), and SIGTERM rolling restarts of two processes on PostgreSQL.
import type { Env } from '../../../src/config.ts';
import { HeraldProcess } from '../../helpers/child.ts';
import { testEnv } from '../../helpers/herald.ts';
import { behaviours, chaosEnv, checkStore, explain, Ledger, RecordingReceiver, sleep, type ChaosResult, type Engine, type Scenario, type Size } from '../harness.ts';

/** A seeded generator, so that a failing run can be told apart from bad luck by its seed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Slot { env: Env; p: HeraldProcess | null }

/**
 * `processes` Herald processes on one store, two healthy routes, events published all along
 * through whichever process is up; `fault` strikes `faults` times at random moments, each
 * time at one process, which is then started again on its port.
 */
async function underFaults(name: string, engine: Engine, size: Size, o: { processes: number; signal: 'SIGKILL' | 'SIGTERM'; faults: number }): Promise<ChaosResult> {
  const seed = Number(process.env.HERALD_CHAOS_SEED ?? Date.now() % 100_000);
  const rnd = random(seed);
  const quick = size === 'quick';
  const events = quick ? 600 : 5000;
  const rx = await RecordingReceiver.start();
  const { env, cleanup } = testEnv(engine, chaosEnv({
    HERALD_REQUEST_TIMEOUT_MS: '1000',
    HERALD_LEASE_SECONDS: '2.5',
    HERALD_MAX_IN_FLIGHT: '64',
    HERALD_MAX_IN_FLIGHT_PER_ENDPOINT: '16',
    HERALD_SHUTDOWN_GRACE_MS: '2000',
    HERALD_POLL_INTERVAL_MS: '200',
  }));
  const slots: Slot[] = [];
  try {
    for (let i = 0; i < o.processes; i++) {
      const p = await HeraldProcess.start({ ...env, HERALD_PORT: '0' });
      slots.push({ env, p });
    }
    const ledger = new Ledger();
    const tenant = await ledger.tenant(slots[0]!.p!.url);
    for (const r of ['a', 'b']) await ledger.subscribe(slots[0]!.p!.url, tenant, rx.route(r, behaviours.healthy(15)));
    let turn = 0;
    const target = () => {
      turn++;
      for (let k = 0; k < slots.length; k++) {
        const s = slots[(turn + k) % slots.length]!;
        if (s.p) return s.p.url;
      }
      return null;
    };
    // Paced to last about as long as the faults do, so that each one strikes with work under way.
    const gapMs = quick ? [300, 500] : [600, 1500];
    const spanMs = o.faults * (gapMs[0]! + gapMs[1]! / 2 + 1200);
    const pub = ledger.publish(target, tenant, events, { batch: 50, concurrency: 2, pauseMs: Math.round(spanMs / (events / 50 / 2)) });
    let maxRecoverMs = 0;
    const recoveries: { caught: { route: string; key: string }[]; at: number }[] = [];
    let cleanExits = 0;
    let exitMs = 0;
    let startMs = 0;
    for (let f = 0; f < o.faults; f++) {
      await sleep(gapMs[0]! + rnd() * gapMs[1]!);
      // Rolling restarts take the processes in turn; kills pick one at random.
      const slot = slots[o.signal === 'SIGTERM' ? f % slots.length : Math.floor(rnd() * slots.length)]!;
      const p = slot.p!;
      recoveries.push({ caught: rx.openNow(), at: Date.now() });
      slot.p = null;
      const k0 = Date.now();
      p.kill(o.signal);
      const exit = await p.exited;
      exitMs = Math.max(exitMs, Date.now() - k0);
      const s0 = Date.now();
      if (o.signal === 'SIGTERM' && exit.code === 0) cleanExits++;
      // A new port each time: the old one could meanwhile go to a Herald of a scenario running beside this one.
      slot.p = await HeraldProcess.start({ ...slot.env, HERALD_PORT: '0' });
      startMs = Math.max(startMs, Date.now() - s0);
    }
    await pub.done;
    const drainMs = await ledger.drained(rx, quick ? 30_000 : 120_000);
    for (const r of recoveries) {
      const ms = rx.recoveryMs(r.caught, r.at);
      maxRecoverMs = ms < 0 ? -1 : Math.max(maxRecoverMs, ms);
      if (ms < 0) break;
    }
    // Let the last outcomes be recorded before reading the store.
    await sleep(500);
    const store = await checkStore(env, rx);
    const notes = [`${o.faults} × ${o.signal === 'SIGKILL' ? 'kill -9' : 'SIGTERM'}`, `seed ${seed}`, `drain ${drainMs} ms`, `exit ≤ ${exitMs} ms, start ≤ ${startMs} ms`];
    if (o.signal === 'SIGTERM') notes.push(`${cleanExits}/${o.faults} exited 0`);
    if (pub.failures) notes.push(`${pub.failures} publish batches retried${pub.refusals.size ? ` (${[...pub.refusals].map(([k, v]) => `${v}× ${k}`).join(', ')})` : ''}`);
    const row = ledger.result(name, rx, { store, recoverMs: maxRecoverMs, notes: notes.join(', ') });
    await explain(env, rx);
    if (o.signal === 'SIGTERM' && cleanExits < o.faults) row.storeFaults += o.faults - cleanExits;
    return row;
  } finally {
    for (const s of slots) if (s.p) { s.p.kill('SIGKILL'); await s.p.exited; }
    await rx.stop();
    await cleanup();
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'kill -9',
    engines: ['sqlite'],
    run: (size, engine) => underFaults('kill -9, SQLite, 1 process', engine, size, { processes: 1, signal: 'SIGKILL', faults: size === 'quick' ? 3 : 10 }),
  },
  {
    name: 'kill -9 two processes',
    engines: ['postgres'],
    run: (size, engine) => underFaults('kill -9, PostgreSQL, 2 processes', engine, size, { processes: 2, signal: 'SIGKILL', faults: size === 'quick' ? 3 : 10 }),
  },
  {
    name: 'SIGTERM rolling restarts',
    engines: ['postgres'],
    run: (size, engine) => underFaults('SIGTERM rolling restarts, PostgreSQL, 2 processes', engine, size, { processes: 2, signal: 'SIGTERM', faults: size === 'quick' ? 2 : 10 }),
  },
];
