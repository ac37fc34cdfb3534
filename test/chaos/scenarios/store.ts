// The store goes away under load: PostgreSQL restarted, PostgreSQL stopped for a while (30 s at
// full size), and SQLite's disk filling up. Each runs on a store of its own (a private
// PostgreSQL server, a tmpfs), never the machine's shared one. Publishing goes on throughout;
// a refused batch is tried again with the same idempotency keys, as a client honouring
// Retry-After would. Publishing is paced (25 events a batch, two at a time, 400 ms apart) so
// that it spans the fault at either size. Refusals other than 503/507 with a Retry-After count as store faults.
// test/storeOutage.test.ts is the npm-test version, with the per-route checks.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeraldProcess } from '../../helpers/child.ts';
import { testEnv } from '../../helpers/herald.ts';
import { PrivatePg, privatePgUnavailable } from '../../helpers/privatePg.ts';
import { behaviours, chaosEnv, checkStore, Ledger, RecordingReceiver, sleep, type ChaosResult, type PublishRun, type Scenario, type Size } from '../harness.ts';

/** Starts a Herald and keeps what it writes to stderr, so that a process that dies says why. */
async function started(env: Record<string, string | undefined>): Promise<{ p: HeraldProcess; stderr: string[] }> {
  const p = await HeraldProcess.start(env);
  const stderr: string[] = [];
  p.child.stderr!.on('data', (d: Buffer) => { stderr.push(d.toString()); if (stderr.length > 50) stderr.shift(); });
  return { p, stderr };
}

/** Why the processes that died did: the first line of what each wrote last. */
function deaths(list: { p: HeraldProcess; stderr: string[] }[]): string[] {
  return list.filter((x) => x.p.child.exitCode !== null || x.p.child.signalCode !== null)
    .map((x) => `died (${x.p.child.exitCode ?? x.p.child.signalCode}): ${x.stderr.join('').trim().split('\n').slice(0, 6).join(' | ').slice(0, 400)}`);
}

const SETTINGS = {
  HERALD_REQUEST_TIMEOUT_MS: '1000',
  HERALD_LEASE_SECONDS: '3',
  HERALD_MAX_IN_FLIGHT: '64',
  HERALD_MAX_IN_FLIGHT_PER_ENDPOINT: '16',
  HERALD_POLL_INTERVAL_MS: '200',
};

/** Refusals as notes; any that is not a 503/507 with Retry-After is a fault. */
function refusals(pub: PublishRun): { notes: string; faults: number } {
  let faults = 0;
  const parts: string[] = [];
  for (const [what, n] of pub.refusals) {
    if (!/^50[37] \(Retry-After \d+\)$/.test(what)) faults += n;
    parts.push(`${n}× ${what}`);
  }
  return { notes: parts.length ? `refused: ${parts.join(', ')}` : 'nothing refused', faults };
}

async function withPg(name: string, size: Size, fault: (server: PrivatePg) => Promise<void>, faultNote: string): Promise<ChaosResult> {
  const quick = size === 'quick';
  const server = await PrivatePg.create();
  const rx = await RecordingReceiver.start();
  const { env, cleanup } = testEnv('sqlite', chaosEnv({ ...SETTINGS, DATABASE_URL: server.url, HERALD_DATABASE_SCHEMA: 'chaos' }));
  const watched: { p: HeraldProcess; stderr: string[] }[] = [];
  const procs: HeraldProcess[] = [];
  try {
    // Two processes sharing the store, as a scaled-out Herald runs.
    for (let i = 0; i < 2; i++) {
      const w = await started({ ...env, HERALD_PORT: '0' });
      watched.push(w);
      procs.push(w.p);
    }
    const ledger = new Ledger();
    const tenant = await ledger.tenant(procs[0]!.url);
    for (const r of ['a', 'b']) await ledger.subscribe(procs[0]!.url, tenant, rx.route(r, behaviours.healthy(10)));
    let turn = 0;
    const pub = ledger.publish(() => procs[turn++ % procs.length]!.url, tenant, quick ? 600 : 5000, { batch: 25, concurrency: 2, pauseMs: 400, tries: 100_000 });
    await sleep(quick ? 800 : 3000);
    const caught = rx.openNow();
    const at = Date.now();
    await fault(server);
    const upAt = Date.now();
    await pub.done;
    const drainMs = await ledger.drained(rx, quick ? 30_000 : 120_000);
    await sleep(500);
    const store = await checkStore(env, rx);
    const r = refusals(pub);
    const died = deaths(watched);
    const row = ledger.result(name, rx, {
      store, recoverMs: rx.recoveryMs(caught, at),
      notes: [faultNote, r.notes, `drained ${drainMs} ms after the last publish, ${Date.now() - upAt} ms after the store returned`, ...died].filter(Boolean).join('; '),
    });
    row.storeFaults += r.faults + died.length;
    return row;
  } finally {
    for (const p of procs) if (p.child.exitCode === null) { p.kill('SIGKILL'); await p.exited; }
    await rx.stop();
    await cleanup();
    server.destroy();
  }
}

async function diskFull(size: Size): Promise<ChaosResult> {
  const quick = size === 'quick';
  const dir = mkdtempSync(join(tmpdir(), 'herald-chaos-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${quick ? 16 : 64}m`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  const rx = await RecordingReceiver.start();
  const { env, cleanup } = testEnv('sqlite', chaosEnv({ ...SETTINGS, HERALD_DATA_DIR: join(dir, 'data') }));
  let p: HeraldProcess | null = null;
  try {
    const w = await started(env);
    p = w.p;
    const ledger = new Ledger();
    const tenant = await ledger.tenant(p.url);
    for (const r of ['a', 'b']) await ledger.subscribe(p.url, tenant, rx.route(r, behaviours.healthy(5)));
    const url = p.url;
    const pub = ledger.publish(() => url, tenant, quick ? 600 : 5000, { batch: 25, concurrency: 2, pauseMs: 400, tries: 100_000 });
    await sleep(quick ? 800 : 3000);
    const caught = rx.openNow();
    const at = Date.now();
    const fd = openSync(filler, 'w');
    try {
      for (;;) writeSync(fd, Buffer.alloc(64 * 1024, 1));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      try { for (;;) writeSync(fd, Buffer.alloc(512, 1)); } catch { /* full to the last block */ }
    } finally {
      closeSync(fd);
    }
    const fullMs = quick ? 3000 : 15_000;
    await sleep(fullMs);
    rmSync(filler);
    const spaceAt = Date.now();
    await pub.done;
    const drainMs = await ledger.drained(rx, quick ? 30_000 : 120_000);
    await sleep(500);
    const store = await checkStore(env, rx);
    const r = refusals(pub);
    const died = deaths([w]);
    const row = ledger.result(`disk full, SQLite, ${fullMs / 1000} s`, rx, {
      store, recoverMs: rx.recoveryMs(caught, at),
      notes: [r.notes, `drained ${drainMs} ms after the last publish, ${Date.now() - spaceAt} ms after space returned`, ...died].filter(Boolean).join('; '),
    });
    row.storeFaults += r.faults + died.length;
    return row;
  } finally {
    if (p && p.child.exitCode === null) { p.kill('SIGKILL'); await p.exited; }
    await rx.stop();
    await cleanup();
    rmSync(filler, { force: true });
    try { execFileSync('umount', [dir]); } catch { execFileSync('umount', ['-l', dir]); }
    rmSync(dir, { recursive: true, force: true });
  }
}

const ci = process.env.CI === 'true' || process.env.CI === '1';
const pgWhy = privatePgUnavailable();
const root = process.getuid?.() === 0;

const pgScenarios: Scenario[] = [
  {
    name: 'PostgreSQL restarted',
    engines: ['postgres'],
    notInTest: true,
    run: (size) => withPg('PostgreSQL restarted (pg_ctl restart -m fast), 2 processes', size, async (s) => { s.restart('fast'); }, 'restart'),
  },
  {
    name: 'PostgreSQL stopped',
    engines: ['postgres'],
    notInTest: true,
    run: (size) => {
      const ms = size === 'quick' ? 3000 : 30_000;
      return withPg(`PostgreSQL stopped ${ms / 1000} s (crash: -m immediate), 2 processes`, size, async (s) => {
        s.stop('immediate');
        await sleep(ms);
        s.start();
      }, `down ${ms / 1000} s`);
    },
  },
];

const fullScenarios: Scenario[] = [
  { name: 'disk full', engines: ['sqlite'], notInTest: true, run: (size) => diskFull(size) },
];

if (pgWhy && !ci) console.log(`NOTE: the PostgreSQL outage scenarios are skipped: ${pgWhy}`);
if (!root && !ci) console.log('NOTE: the disk-full scenario is skipped: not root (it mounts a tmpfs)');

export const scenarios: Scenario[] = [...(pgWhy && !ci ? [] : pgScenarios), ...(!root && !ci ? [] : fullScenarios)];
