// The clock-step scenario (issue 10): a Herald on a clock the scenario steps by minutes,
// forward and back, while retries wait and attempts are in flight. Shared by
// test/clock.test.ts (small) and the chaos run (large).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SteppedClock } from '../../src/domain/clock.ts';
import { behaviours, chaosEnv, checkStore, Ledger, RecordingReceiver, type ChaosResult } from '../chaos/harness.ts';
import { HeraldProcess } from './child.ts';
import { startHerald, testEnv, type TestHerald } from './herald.ts';
import { STEPPED_SERVE } from './steppedServe.ts';
import { eventually, sleep } from './receiver.ts';

export interface ClockStepOptions {
  engine: 'sqlite' | 'postgres';
  /** Events in each of the three batches. */
  perBatch: number;
  subscriptions: number;
  /** How long the receiver holds each request before it answers. */
  holdMs: number;
  /** How long a phase may take before the scenario gives up. */
  phaseTimeoutMs?: number;
  /**
   * Step once half a batch has arrived (for batches larger than the caps let through at
   * once), rather than once all of it has.
   */
  midBatch?: boolean;
}

/** One request as the receiver saw it. */
interface Arrival {
  key: string;
  n: number;
  realAt: number;
  heraldAt: number;
  /** The Standard Webhooks timestamp Herald signed with, in ms. */
  signedAt: number;
  answeredReal: number;
  answeredHerald: number;
  status: number;
}

export interface ClockStepResult {
  engine: string;
  events: number;
  /** Expected (event, subscription) pairs never answered 2xx. */
  lost: number;
  /** Requests for a pair that was never accepted. */
  unexpected: number;
  /** 2xx answers beyond the first for one pair. */
  duplicates: number;
  /** Requests for a pair that arrived while another for it was still being answered. */
  overlaps: number;
  /** Retries that arrived before their time on Herald's own clock (tolerance 50 ms). */
  earlyOnHeraldClock: number;
  /** Most a retry came before its schedule in real time, in ms, and the largest forward step. */
  maxRealEarlinessMs: number;
  maxForwardStepMs: number;
  /** Longest a first attempt came after its publish, in real time (publishing began), except for those below. */
  maxFirstWaitMs: number;
  /** Deliveries due but not yet sent when the clock stepped back: they wait for it to catch up. */
  waitedForBackStep: number;
  /** Signing timestamps more than 2 s away from Herald's clock at arrival (no step just before). */
  badTimestamps: number;
  /** From the last step until every pair had its 2xx. */
  recoverMs: number;
  /** Deliveries not succeeded, or still carrying a lease, at the end. */
  inconsistent: number;
  /** Requests open at the receiver when the forward and the backward step were made. */
  inFlightAtSteps: [number, number];
  /** Attempts on record vs requests the receiver got. */
  attemptsRecorded: number;
  requests: number;
}

const RETRY_S = 60;
const MIN = 60_000;

export async function runClockStep(o: ClockStepOptions): Promise<ClockStepResult> {
  const clock = new SteppedClock();
  const phaseTimeout = o.phaseTimeoutMs ?? 20_000;
  const arrivals: Arrival[] = [];
  const active = new Set<string>();
  const counts = new Map<string, number>();
  let overlaps = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const key = `${req.url}|${String(req.headers['webhook-id'])}`;
      if (active.has(key)) overlaps++;
      active.add(key);
      const n = (counts.get(key) ?? 0) + 1;
      counts.set(key, n);
      const a: Arrival = {
        key, n, realAt: Date.now(), heraldAt: clock.now(), signedAt: Number(req.headers['webhook-timestamp']) * 1000,
        answeredReal: 0, answeredHerald: 0, status: n === 1 ? 500 : 200,
      };
      arrivals.push(a);
      // Every pair fails its first attempt, so each waits for a retry a minute away.
      setTimeout(() => {
        active.delete(key);
        a.answeredReal = Date.now();
        a.answeredHerald = clock.now();
        res.writeHead(a.status, { 'content-type': 'text/plain' }).end(a.status === 200 ? 'ok' : 'no');
      }, o.holdMs);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  let h: TestHerald | null = null;
  try {
    h = await startHerald(o.engine, {
      HERALD_RETRY_SCHEDULE: `${RETRY_S},${RETRY_S},${RETRY_S},${RETRY_S}`,
      HERALD_RETRY_JITTER: '0',
      HERALD_LEASE_SECONDS: '10',
      HERALD_REQUEST_TIMEOUT_MS: String(Math.max(3000, o.holdMs * 2)),
      HERALD_POLL_INTERVAL_MS: '100',
      // Every first attempt fails, so each subscription fails far more than five times in a
      // row: its breaker would hold the next batch back, which is not what this measures.
      HERALD_BREAKER_FAILURES: '0',
    }, { clock });
    const th = h;
    const t = await th.tenant('Clock');
    const paths: string[] = [];
    for (let i = 0; i < o.subscriptions; i++) {
      const r = await th.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: `${base}/s${i}` });
      if (r.status !== 201) throw new Error(`endpoint: ${r.status} ${JSON.stringify(r.body)}`);
      paths.push(`/s${i}`);
    }
    const expected = new Set<string>();
    const published = new Map<string, number>();
    let seq = 0;
    const publishBatch = async (): Promise<string[]> => {
      const publishedAt = Date.now();
      const ids: string[] = [];
      for (let at = 0; at < o.perBatch; at += 500) {
        const events = Array.from({ length: Math.min(500, o.perBatch - at) }, () => ({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: String(++seq) }));
        const r = await th.admin('POST', '/admin/v1/events/batch', { events });
        if (r.status !== 202) throw new Error(`publish: ${r.status} ${JSON.stringify(r.body)}`);
        for (const e of r.body.events) ids.push(e.id);
      }
      for (const id of ids) for (const p of paths) {
        expected.add(`${p}|${id}`);
        published.set(`${p}|${id}`, publishedAt);
      }
      return ids;
    };
    const keysOf = (ids: string[]) => ids.flatMap((id) => paths.map((p) => `${p}|${id}`));
    const arrived = (keys: string[], n: number) => keys.every((k) => (counts.get(k) ?? 0) >= n);
    // The moment to step: half the batch has arrived and some of it is being answered now.
    const midway = (keys: string[]) => keys.filter((k) => counts.has(k)).length >= keys.length / 2 && keys.some((k) => active.has(k));
    const answered = (keys: string[], n: number) => {
      const s = new Set(keys);
      let got = 0;
      for (const a of arrivals) if (a.n === n && a.answeredReal > 0 && s.has(a.key)) got++;
      return got >= keys.length;
    };
    const forwardSteps: number[] = [];
    const stepTimes: number[] = [];
    const step = (ms: number) => {
      clock.step(ms);
      stepTimes.push(Date.now());
      if (ms > 0) forwardSteps.push(ms);
    };

    // A: first attempts fail; their retries are a minute away and must not come early.
    const a = keysOf(await publishBatch());
    await eventually(() => answered(a, 1), phaseTimeout, 'batch A first attempts');
    // Anything sent meanwhile is counted as early below.
    await sleep(500);

    // B: stepped two minutes forward while B's first attempts are in flight. A's retries come
    // due at once; B's leases (10 s) look run out, but B is still being sent.
    const b = keysOf(await publishBatch());
    const ready = (keys: string[]) => (o.midBatch ? midway(keys) : arrived(keys, 1));
    await eventually(() => ready(b), phaseTimeout, 'batch B first attempts to arrive');
    const caughtB = b.filter((k) => active.has(k)).length;
    step(2 * MIN);
    await eventually(() => answered(b, 1) && arrived(a, 2), phaseTimeout, 'A retried and B answered after the forward step');
    // Time for B's retries to come early, if they were to.
    await sleep(700);

    // C: stepped three minutes back while C's first attempts are in flight; B's retries now
    // wait for four minutes. What of C was not sent yet waits for the clock to catch up with
    // the time it was due at: a backward step delays what was due by up to the step.
    const c = keysOf(await publishBatch());
    await eventually(() => ready(c), phaseTimeout, 'batch C first attempts to arrive');
    const caughtC = c.filter((k) => active.has(k)).length;
    const cSent = c.filter((k) => counts.has(k));
    const cWaiting = new Set(c.filter((k) => !counts.has(k)));
    step(-3 * MIN);
    await eventually(() => answered(cSent, 1), phaseTimeout, 'batch C answered after the backward step');
    // D: published with the clock a minute behind where it started: due at once all the same.
    const d = keysOf(await publishBatch());
    await eventually(() => answered(d, 1), phaseTimeout, 'batch D first attempts after the backward step');
    // Anything sent meanwhile is counted as early below.
    await sleep(500);

    // Four minutes forward: the retries of B, C and D are due.
    step(4 * MIN);
    const lastStep = Date.now();
    const all = [...expected];
    const succeeded = () => {
      const ok = new Set(arrivals.filter((x) => x.status === 200 && x.answeredReal > 0).map((x) => x.key));
      return all.filter((k) => ok.has(k)).length;
    };
    await eventually(() => succeeded() === all.length, phaseTimeout, 'every delivery to succeed').catch(() => undefined);
    const recoverMs = Date.now() - lastStep;
    // Let recording catch up before the store is read.
    const db = th.herald.store.db;
    await eventually(async () => {
      const rows = await db.all<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries WHERE status <> 'succeeded' OR lease_token IS NOT NULL");
      return Number(rows[0]!.n) === 0;
    }, 5000, 'the store to settle').catch(() => undefined);
    const bad = await db.all<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries WHERE status <> 'succeeded' OR lease_token IS NOT NULL");
    const rec = await db.all<{ n: number }>('SELECT COUNT(*) AS n FROM attempts');

    const ok = new Map<string, number>();
    for (const x of arrivals) if (x.status === 200) ok.set(x.key, (ok.get(x.key) ?? 0) + 1);
    let early = 0;
    let maxRealEarliness = 0;
    const byKey = new Map<string, Arrival[]>();
    for (const x of arrivals) byKey.set(x.key, [...(byKey.get(x.key) ?? []), x]);
    for (const list of byKey.values()) {
      for (let i = 1; i < list.length; i++) {
        const prev = list[i - 1]!;
        const cur = list[i]!;
        if (prev.answeredReal === 0) continue;
        if (cur.heraldAt < prev.answeredHerald + RETRY_S * 1000 - 50) early++;
        maxRealEarliness = Math.max(maxRealEarliness, prev.answeredReal + RETRY_S * 1000 - cur.realAt);
      }
    }
    return {
      engine: o.engine,
      events: seq,
      lost: all.length - [...ok.keys()].filter((k) => expected.has(k)).length,
      unexpected: arrivals.filter((x) => !expected.has(x.key)).length,
      duplicates: [...ok.values()].reduce((s, n) => s + n - 1, 0),
      overlaps,
      earlyOnHeraldClock: early,
      maxRealEarlinessMs: maxRealEarliness,
      maxForwardStepMs: Math.max(...forwardSteps),
      maxFirstWaitMs: Math.max(...arrivals.filter((x) => x.n === 1 && !cWaiting.has(x.key)).map((x) => x.realAt - (published.get(x.key) ?? x.realAt))),
      waitedForBackStep: cWaiting.size,
      // A request signed just before a step arrives just after it, with the time it was signed at.
      badTimestamps: arrivals.filter((x) => Math.abs(x.signedAt - x.heraldAt) > 2000 && !stepTimes.some((t) => t <= x.realAt && t > x.realAt - 3000)).length,
      recoverMs,
      inconsistent: Number(bad[0]!.n),
      inFlightAtSteps: [caughtB, caughtC],
      attemptsRecorded: Number(rec[0]!.n),
      requests: arrivals.length,
    };
  } finally {
    await h?.stop();
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  }
}

// ------------------------------------------------------------ two processes, clocks jumping

export interface ClockJumpOptions {
  /** Rounds, each a batch wholly in flight when a clock jumps. */
  rounds: number;
  /** Events a round (each to two routes, all of them in flight at once). */
  perRound: number;
  /** How long the receiver holds each request. */
  holdMs: number;
  /** How far a clock jumps forward; more than the lease. */
  jumpMs?: number;
}

export interface ClockJumpRound {
  /** Whose clock jumped: both (as an NTP step on a host both run on), or one of them (from 10 s slow to `jumpMs` ahead). */
  jumped: 'both' | 'A' | 'B';
  /** The round's requests each process sent (from its log: one line an attempt, recorded or not). */
  sent: { A: number; B: number };
  /** Deliveries published just after the jump, while the process holding the round was full. */
  extra: number;
}

export interface ClockJumpResult {
  row: ChaosResult;
  rounds: ClockJumpRound[];
  /** Lines the processes logged at error level or worse (a claim that failed, ...), the first few. */
  errors: string[];
}

/**
 * Two Herald processes on one PostgreSQL schema, each on its own clock file. Each round
 * publishes a batch that the two processes take up at once (all of it in flight at a slow
 * receiver), then jumps a clock forward by more than the lease: both processes' clocks
 * together, or one only, which then sees the other's leases as run out. The receiver
 * counts a request for a delivery arriving while another for it is open as an overlap.
 * A clock that jumps alone runs 10 s slow before (what is published is not due on it yet,
 * so the other process holds the whole round) and then jumps to `jumpMs` ahead.
 * A clock that jumped alone is set back once its round has drained, so that the processes
 * agree on the time again before the next round (they must; see the README). A few events
 * are published just after each jump, for the process that is not full to claim meanwhile.
 */
function notesOf(rounds: ClockJumpRound[], jump: number, inFlight: number): string {
  const alone = rounds.filter((r) => r.jumped !== 'both');
  const held = alone.map((r) => r.sent[r.jumped === 'A' ? 'B' : 'A']);
  const claimed = alone.map((r) => r.sent[r.jumped as 'A' | 'B']);
  return `${rounds.length} jumps of +${jump / 1000} s, each with ${inFlight} deliveries in flight and ${rounds[0]?.extra ?? 0} published just after: `
    + `${rounds.length - alone.length} of both clocks, ${alone.length} of one alone`
    + (alone.length ? ` (the other process sending ${Math.min(...held)} to ${Math.max(...held)} of the round, the jumped one ${Math.min(...claimed)} to ${Math.max(...claimed)})` : '');
}

/** How slow a clock that is to jump alone runs before its jump. */
const LAG_MS = 10_000;

export async function runClockJump(o: ClockJumpOptions): Promise<ClockJumpResult> {
  const jump = o.jumpMs ?? 2 * MIN;
  const dir = mkdtempSync(join(tmpdir(), 'herald-clockjump-'));
  const files = { A: join(dir, 'a'), B: join(dir, 'b') };
  const offsets = { A: 0, B: 0 };
  const write = (who: 'A' | 'B') => writeFileSync(files[who], String(offsets[who]));
  write('A');
  write('B');
  const rx = await RecordingReceiver.start();
  const perProcess = String(Math.max(64, 2 * o.perRound));
  const { env, cleanup } = testEnv('postgres', chaosEnv({
    HERALD_REQUEST_TIMEOUT_MS: String(Math.max(1000, 2 * o.holdMs)),
    HERALD_LEASE_SECONDS: String(Math.max(2.5, (4 * o.holdMs + 500) / 1000)),
    // Either process has room for the whole round, so that a process that sees the other's leases run out can take them all.
    HERALD_MAX_IN_FLIGHT: perProcess,
    HERALD_MAX_IN_FLIGHT_PER_ENDPOINT: perProcess,
    HERALD_POLL_INTERVAL_MS: '100',
  }));
  const procs: Partial<Record<'A' | 'B', HeraldProcess>> = {};
  try {
    procs.A = await HeraldProcess.start({ ...env, HERALD_TEST_CLOCK_FILE: files.A }, STEPPED_SERVE);
    procs.B = await HeraldProcess.start({ ...env, HERALD_TEST_CLOCK_FILE: files.B }, STEPPED_SERVE);
    const seen = { A: procs.A.lines.length, B: procs.B.lines.length };
    const rounds: ClockJumpRound[] = [];
    const ledger = new Ledger();
    let maxRecoverMs = 0;
    const tenant = await ledger.tenant(procs.A.url);
    for (const r of ['a', 'b']) await ledger.subscribe(procs.A.url, tenant, rx.route(r, behaviours.healthy(o.holdMs)));
    const order: ClockJumpRound['jumped'][] = ['both', 'B', 'A'];
    for (let i = 0; i < o.rounds; i++) {
      const jumped = order[i % order.length]!;
      // What the round before sent twice may still be open: start from a quiet receiver.
      const q0 = Date.now();
      while (rx.openNow().length > 0 && Date.now() - q0 < 10_000) await sleep(20);
      const before = rx.openNow().length;
      // A clock that is to jump alone first runs a little slow, so that what is published is not
      // yet due on it and the other process takes the whole round; then it jumps past the lease.
      const roundStart = Date.now();
      const alone = jumped === 'both' ? null : jumped;
      if (alone) {
        offsets[alone] -= LAG_MS;
        write(alone);
        await sleep(100);
      }
      // Published through the process that keeps its time: a publish is due on its publisher's clock.
      const via = () => procs[alone === 'A' ? 'B' : 'A']!.url;
      const known = ledger.accepted.size;
      const pub = ledger.publish(via, tenant, o.perRound, { batch: o.perRound });
      await pub.done;
      const want = 2 * o.perRound;
      const t0 = Date.now();
      while (rx.openNow().length < want && Date.now() - t0 < 10_000) await sleep(10);
      if (before !== 0 || rx.openNow().length < want) throw new Error(`round ${i}: ${rx.openNow().length} of ${want} in flight, ${before} before`);
      const caught = rx.openNow();
      const at = Date.now();
      if (alone) {
        offsets[alone] += LAG_MS + jump;
        write(alone);
      } else {
        for (const who of ['A', 'B'] as const) { offsets[who] += jump; write(who); }
      }
      // Published within a lease of the jump, while the process holding the round is full: the
      // other one must claim them (what has no lease is taken as ever).
      const extra = Math.max(1, Math.floor(o.perRound / 8));
      await ledger.publish(via, tenant, extra, { batch: extra }).done;
      const drained = await ledger.drained(rx, 30_000);
      if (drained < 0) break;
      maxRecoverMs = Math.max(maxRecoverMs, rx.recoveryMs(caught, at));
      // Who sent the round's deliveries: each attempt logs one line once its outcome is recorded
      // (or its lease found lost), which can come a little after the answer.
      const ids = new Set([...ledger.accepted.values()].slice(known).map((a) => a.eventId));
      const count = (who: 'A' | 'B') => procs[who]!.lines.slice(seen[who]).filter((l) => l.includes('"delivery attempt') && ids.has(JSON.parse(l).event_id)).length;
      const t1 = Date.now();
      while (count('A') + count('B') < want + 2 * extra && Date.now() - t1 < 3000) await sleep(50);
      await sleep(100);
      const sent = { A: count('A'), B: count('B') };
      seen.A = procs.A.lines.length;
      seen.B = procs.B.lines.length;
      rounds.push({ jumped, sent, extra: 2 * extra });
      if (process.env.HERALD_CLOCKJUMP_DEBUG) {
        console.log(`round ${i} ${jumped}: published ${at - roundStart} ms, drained ${drained} ms after the jump, sent ${JSON.stringify(sent)}`);
        for (const who of ['A', 'B'] as const) for (const l of procs[who]!.lines) if (!l.includes('"delivery attempt')) console.log(who, l.slice(0, 300));
      }
      // Agree on the time again before the next round.
      if (jumped !== 'both') {
        offsets[jumped] -= jump;
        write(jumped);
        await sleep(100);
      }
    }
    const check = await checkStore({ ...env }, rx);
    const row = ledger.result('clock jump past the lease, PostgreSQL, 2 processes', rx, {
      store: check, recoverMs: maxRecoverMs,
      notes: notesOf(rounds, jump, 2 * o.perRound),
    });
    const errors = [...procs.A.lines, ...procs.B.lines].filter((l) => { try { return JSON.parse(l).level >= 50; } catch { return false; } });
    if (errors.length) row.notes = `${row.notes}; ${errors.length} errors logged`;
    return { row, rounds, errors: errors.slice(0, 5) };
  } finally {
    for (const p of Object.values(procs)) { p.kill('SIGKILL'); await p.exited; }
    await rx.stop();
    await cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
