// The clock-step scenario (issue 10): a Herald on a clock the scenario steps by minutes,
// forward and back, while retries wait and attempts are in flight. Shared by
// test/clock.test.ts (small) and the chaos run (large).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SteppedClock } from '../../src/domain/clock.ts';
import { startHerald, type TestHerald } from './herald.ts';
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
