/**
 * Herald's chaos harness: publish a known set of events, break something, and check the
 * receivers' record against what Herald accepted. Used by `npm run chaos` (full and
 * `--quick` sizes, scripts in test/chaos/run.ts) and by test/chaos.test.ts (quick size).
 *
 * Adding a scenario (chaos-store, clock, ...): drop a file in test/chaos/scenarios/ that
 * exports `scenarios: Scenario[]`. Both runners find every file there by themselves.
 *
 *   export const scenarios: Scenario[] = [{
 *     name: 'my fault', engines: ['sqlite'],            // engines: which engines it needs (postgres ones are skipped without PostgreSQL)
 *     async run(size, engine) {                         // size: 'quick' (npm test, keep it under ~20 s) or 'full'
 *       const rx = await RecordingReceiver.start();     // real HTTP on 127.0.0.1
 *       const { env, cleanup } = testEnv(engine, chaosEnv());  // test/helpers/herald.ts; chaosEnv() adds a long retry schedule
 *       const p = await HeraldProcess.start(env);       // or startHerald(engine, extra) in-process
 *       const ledger = new Ledger();
 *       const tenant = await ledger.tenant(p.url);                        // a tenant through the admin API
 *       await ledger.subscribe(p.url, tenant, rx.route('a'));             // a native endpoint at rx's route 'a'; its events must reach it
 *       const pub = ledger.publish(() => p.url, tenant, 2000, { batch: 100 }); // batches with an idempotency key per event; retried until accepted
 *       ...inject the fault; note when: const caught = rx.openNow(); const t = Date.now();
 *       await pub.done;
 *       await ledger.drained(rx, 60_000);                  // every accepted event acknowledged by every matching route
 *       const store = await checkStore(env);               // reads the store itself (SQLite file or PostgreSQL schema)
 *       const row = ledger.result('my fault', rx, { store, recoverMs: rx.recoveryMs(caught, t) });
 *       ...stop things, cleanup(); return row;           // or an array of rows
 *     },
 *   }];
 *
 * What the row means (ChaosResult):
 * - events: accepted events (each may go to several routes);
 * - lost: accepted (event, matching route) pairs the receiver never answered 2xx to;
 * - duplicates: 2xx answers beyond the first for one (route, event): Herald sent again what had been acknowledged;
 *   retries after a failed answer are not duplicates;
 * - overlaps: a request for an (route, event) arriving while another for the same pair was still open
 *   (judged once the receiver has read the events already in, such as the earlier one's close);
 * - unaccepted: arrivals for events Herald never accepted (unknown key or no 202 for it);
 * - unsettled: events whose batch was given up on without a 202 (tests expect 0: publishes are retried);
 * - storeFaults: from checkStore: deliveries in flight without a live lease, leases on finished
 *   deliveries, deliveries still waiting after the drain, and deliveries the store calls succeeded
 *   that the receiver never acknowledged;
 * - maxRecoverMs: the longest a delivery caught by a fault (open at the receiver when it struck,
 *   or waiting then) took to be acknowledged, measured from the fault (see RecordingReceiver.recoveryMs).
 *
 * Receivers misbehave through a Behaviour: a function of (key, n-th arrival of this pair, ms since
 * the receiver started) answering an Action: ok, an HTTP status (with Retry-After), a reset mid-body,
 * a slow loris, garbage that is not HTTP, or a stall. See `behaviours` for ready-made ones.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Env } from '../../src/config.ts';
import { openStore } from '../../src/store/open.ts';
import type { SqlStore } from '../../src/store/sqlStore.ts';
import { ADMIN } from '../helpers/herald.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type Size = 'quick' | 'full';
export type Engine = 'sqlite' | 'postgres';

export interface ChaosResult {
  scenario: string;
  events: number;
  lost: number;
  duplicates: number;
  overlaps: number;
  unaccepted: number;
  storeFaults: number;
  maxRecoverMs: number;
  /** Events sent whose batch never got a 202 (given up after its tries): a publisher would see them refused. */
  unsettled?: number;
  /** Free text for the table's last column (a throughput ratio, the number of kills, ...). */
  notes?: string;
}

export interface Scenario {
  name: string;
  engines: Engine[];
  /** Left out of test/chaos.test.ts (still run by `npm run chaos`). */
  notInTest?: boolean;
  run(size: Size, engine: Engine): Promise<ChaosResult | ChaosResult[]>;
}

/** Settings every chaos Herald gets on top of testEnv's: retries enough for long faults. */
export function chaosEnv(extra: Env = {}): Env {
  return {
    HERALD_RETRY_SCHEDULE: '0.1,0.2,0.4,0.8,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1',
    HERALD_RETRY_JITTER: '0.1',
    ...extra,
  };
}

// ---------------------------------------------------------------- receivers

export type Action =
  | { kind: 'ok'; delayMs?: number }
  | { kind: 'status'; status: number; retryAfter?: string; delayMs?: number }
  /** Headers and part of the body, then a TCP reset. */
  | { kind: 'reset' }
  /** 200 headers, then one byte every `everyMs`, never ending (until Herald gives up). */
  | { kind: 'loris'; everyMs: number }
  /** Bytes that are not HTTP, then the connection closes. */
  | { kind: 'garbage' }
  /** No answer at all for `ms`, then 200 (Herald has usually given up by then). */
  | { kind: 'stall'; ms: number };

export type Behaviour = (key: string, n: number, sinceStartMs: number) => Action;

export const behaviours = {
  healthy: (delayMs = 0): Behaviour => () => ({ kind: 'ok', delayMs }),
  /** The first `times` arrivals of each event get `bad`; later ones succeed. */
  firstAttempts: (bad: Action, times = 1, delayMs = 0): Behaviour => (_k, n) => (n <= times ? bad : { kind: 'ok', delayMs }),
  /** Every arrival gets `bad` for `ms` after the receiver starts (or after `fromMs`), then succeeds. */
  window: (bad: Action, ms: number, fromMs = 0, delayMs = 0): Behaviour => (_k, _n, t) => (t >= fromMs && t < fromMs + ms ? bad : { kind: 'ok', delayMs }),
};

interface Route {
  name: string;
  behaviour: Behaviour;
  /** key -> arrivals so far. */
  arrivals: Map<string, number>;
  /** key -> times of its 2xx answers. */
  oks: Map<string, number[]>;
  /** key -> the requests open now (numbered in arrival order). */
  open: Map<string, Set<number>>;
  /** For each overlap: the key, when the open request arrived, when the second did (checkStore keeps those Herald's records do not disprove). */
  overlapLog: { key: string; firstAt: number; secondAt: number }[];
  /** key -> when its latest request arrived. */
  lastArrival: Map<string, number>;
  unparsable: number;
  total: number;
}

/** The key a chaos event carries (its entity_id), from a native body. */
function keyOf(body: string): string | null {
  try {
    const k = JSON.parse(body)?.data?.entity_id;
    return typeof k === 'string' ? k : null;
  } catch {
    return null;
  }
}

/**
 * One HTTP server on loopback with many routes (`/r/<name>`), one per subscription. Records
 * every arrival per route and event key, the 2xx answers, and overlaps: a request for a
 * (route, key) that arrives while another for it is still open (from the end of its body
 * until its answer is written, Herald closes its side, or the connection is gone), still open
 * once the events already in have been read.
 */
export class RecordingReceiver {
  private readonly server: Server;
  private readonly routes = new Map<string, Route>();
  private nextRequest = 0;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  readonly startedAt = Date.now();
  base = '';

  private constructor() {
    this.server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => this.handle(req, res));
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
  }

  static async start(): Promise<RecordingReceiver> {
    const r = new RecordingReceiver();
    await new Promise<void>((ok) => r.server.listen(0, '127.0.0.1', ok));
    r.base = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  /** A route and its URL. */
  route(name: string, behaviour: Behaviour = behaviours.healthy()): { name: string; url: string } {
    this.routes.set(name, { name, behaviour, arrivals: new Map(), oks: new Map(), open: new Map(), overlapLog: [], lastArrival: new Map(), unparsable: 0, total: 0 });
    return { name, url: `${this.base}/r/${name}` };
  }

  setBehaviour(name: string, behaviour: Behaviour): void {
    this.routes.get(name)!.behaviour = behaviour;
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms);
    this.timers.add(t);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const name = /^\/r\/([^/?]+)/.exec(req.url ?? '')?.[1];
    const route = name ? this.routes.get(name) : undefined;
    if (!route) { res.writeHead(404).end(); return; }
    route.total++;
    const chunks: Buffer[] = [];
    // Open once the body is in (its key is known only then) until it is answered, or Herald
    // closes its side of the connection, or the connection goes.
    let key: string | null = null;
    let closed = false;
    const self = this.nextRequest++;
    const close = () => {
      if (closed || key === null) return;
      closed = true;
      const open = route.open.get(key);
      open?.delete(self);
      if (open?.size === 0) route.open.delete(key);
    };
    // Herald closing its side ends its attempt, whether or not this receiver has answered yet.
    const sock = req.socket;
    sock.once('end', close);
    res.on('close', () => { sock.off('end', close); close(); });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      key = keyOf(Buffer.concat(chunks).toString('utf8'));
      if (key === null) { route.unparsable++; res.writeHead(400).end(); return; }
      const open = route.open.get(key) ?? new Set<number>();
      if (open.size > 0) {
        // An earlier request for the key looks open. Its connection may already be closed with
        // the close not yet read: on a loaded machine this receiver can fall behind by more than
        // the retry delay, and then reads Herald's abort of a timed-out attempt and the retry in
        // one turn of its loop, in either order. So judge once the events already in are read:
        // an earlier request still open then is an overlap.
        const earlier = [...open];
        const k = key, firstAt = route.lastArrival.get(key) ?? 0, secondAt = Date.now();
        setImmediate(() => setImmediate(() => {
          const still = route.open.get(k);
          if (!earlier.some((id) => still?.has(id))) return;
          route.overlapLog.push({ key: k, firstAt, secondAt });
        }));
      }
      route.lastArrival.set(key, Date.now());
      open.add(self);
      route.open.set(key, open);
      const n = (route.arrivals.get(key) ?? 0) + 1;
      route.arrivals.set(key, n);
      const k = key;
      this.act(route.behaviour(k, n, Date.now() - this.startedAt), res, close, () => {
        const list = route.oks.get(k) ?? [];
        list.push(Date.now());
        route.oks.set(k, list);
      });
    });
  }

  /** `answered`: the request has its answer (or its end), so it is no longer open. `ok`: a 2xx went out. */
  private act(a: Action, res: ServerResponse, answered: () => void, ok: () => void): void {
    const sock = res.socket as Socket;
    switch (a.kind) {
      case 'ok':
      case 'status': {
        const status = a.kind === 'ok' ? 200 : a.status;
        const send = () => {
          if (res.destroyed) return;
          // Counted when the answer is written: Herald may still lose it, which is its own fault to handle.
          if (status >= 200 && status < 300) ok();
          answered();
          res.writeHead(status, { 'content-type': 'text/plain', ...(a.kind === 'status' && a.retryAfter ? { 'retry-after': a.retryAfter } : {}) });
          res.end('ok');
        };
        if (a.delayMs) this.later(a.delayMs, send);
        else send();
        return;
      }
      case 'reset':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
        res.write('partial body ');
        this.later(5, () => sock.resetAndDestroy());
        return;
      case 'loris': {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.flushHeaders();
        // Bounded: at most ten minutes of trickle whatever Herald does.
        const end = Date.now() + 600_000;
        const tick = () => {
          if (res.destroyed || Date.now() > end) { res.destroy(); return; }
          res.write('.');
          this.later(a.everyMs, tick);
        };
        tick();
        return;
      }
      case 'garbage':
        sock.write('\x00\x13garbage that is not HTTP\r\n\r\n\xff\xfe');
        this.later(5, () => sock.destroy());
        return;
      case 'stall':
        this.later(a.ms, () => {
          if (res.destroyed) return;
          ok();
          answered();
          res.writeHead(200).end('late');
        });
        return;
    }
  }

  /** Every (route, key) with a request open now: what a fault striking now catches. */
  openNow(): { route: string; key: string }[] {
    const out: { route: string; key: string }[] = [];
    for (const r of this.routes.values()) for (const k of r.open.keys()) out.push({ route: r.name, key: k });
    return out;
  }

  /** Whether (route, key) has had a 2xx answer. */
  acked(route: string, key: string): boolean {
    return (this.routes.get(route)?.oks.get(key)?.length ?? 0) > 0;
  }

  /**
   * How long after `since` the caught pairs were acknowledged (the latest of them), or, with
   * none caught, how long until the first acknowledgement of anything after `since` (0 when none came).
   * -1 when something caught has not been acknowledged yet.
   */
  recoveryMs(caught: { route: string; key: string }[], since: number): number {
    let latest = since;
    if (caught.length === 0) {
      let first = Infinity;
      for (const r of this.routes.values()) for (const times of r.oks.values()) for (const t of times) if (t >= since && t < first) first = t;
      // Nothing acknowledged since: nothing was waiting either, or the drain would have seen it.
      return first === Infinity ? 0 : first - since;
    }
    for (const c of caught) {
      const after = (this.routes.get(c.route)?.oks.get(c.key) ?? []).find((t) => t >= since);
      if (after === undefined) return -1;
      latest = Math.max(latest, after);
    }
    return latest - since;
  }

  /** 2xx answers to the routes named, in [from, to): for throughput. */
  acksBetween(routes: string[], from: number, to: number): number {
    let n = 0;
    for (const name of routes) for (const times of this.routes.get(name)?.oks.values() ?? []) for (const t of times) if (t >= from && t < to) n++;
    return n;
  }

  /** The time of the last first-acknowledgement among `routes` (when the last of their events got through). */
  lastFirstAck(routes: string[]): number {
    let last = 0;
    for (const name of routes) for (const times of this.routes.get(name)?.oks.values() ?? []) if (times[0]! > last) last = times[0]!;
    return last;
  }

  /** Read access for the ledger. */
  routeRecord(name: string): Route | undefined {
    return this.routes.get(name);
  }

  allRoutes(): Route[] {
    return [...this.routes.values()];
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

// ---------------------------------------------------------------- ledger

async function adminCall(base: string, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

export interface Tenant { id: string; apiToken: string }

export interface PublishRun {
  /** Resolves when every batch has been accepted (or given up on after its tries). */
  done: Promise<void>;
  /** Batches answered other than 202, or not answered (each tried again, same keys). */
  failures: number;
  /** Answers seen other than 202, with their Retry-After when given: `503 (Retry-After 1)`. */
  refusals: Map<string, number>;
}

let ledgerSeq = 0;

/**
 * What Herald accepted: events by key (their entity_id, unique across the run), the tenant
 * they went to, and the routes subscribed to each tenant. An event counts as accepted once
 * a 202 names it; a batch that got no answer is tried again with the same idempotency keys,
 * so it ends up either accepted once or refused, never in between.
 */
export class Ledger {
  readonly accepted = new Map<string, { tenant: string; eventId: string }>();
  /** Keys sent in a batch that has not (yet) been answered 202. */
  readonly unsettled = new Set<string>();
  private readonly routesOf = new Map<string, string[]>();
  private readonly prefix = `c${process.pid}x${++ledgerSeq}x`;
  private next = 0;

  async tenant(base: string, name = 'Chaos'): Promise<Tenant> {
    const r = await adminCall(base, 'POST', '/admin/v1/tenants', { name });
    if (r.status !== 201) throw new Error(`tenant: ${r.status} ${JSON.stringify(r.body)}`);
    this.routesOf.set(r.body.id, []);
    return { id: r.body.id, apiToken: r.body.credentials.api_token };
  }

  /** A native endpoint for the tenant at the route's URL: every event of the tenant must reach it. */
  async subscribe(base: string, tenant: Tenant, route: { name: string; url: string }): Promise<string> {
    const res = await fetch(base + '/api/v1/endpoints', {
      method: 'POST',
      headers: { authorization: `Bearer ${tenant.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: route.url }),
    });
    const body = (await res.json()) as any;
    if (res.status !== 201) throw new Error(`endpoint: ${res.status} ${JSON.stringify(body)}`);
    this.routesOf.get(tenant.id)!.push(route.name);
    return body.id;
  }

  /**
   * Publishes `n` events to the tenant in batches, `concurrency` batches at a time, through
   * whatever base URL `target()` answers at the time (null: no Herald up; wait). Stops trying
   * a batch after `tries` (it then stays unsettled).
   */
  publish(target: () => string | null, tenant: Tenant, n: number, o: { batch?: number; concurrency?: number; tries?: number; pauseMs?: number } = {}): PublishRun {
    const batch = o.batch ?? 100;
    const keys = Array.from({ length: n }, () => `${this.prefix}${this.next++}`);
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += batch) chunks.push(keys.slice(i, i + batch));
    const run: PublishRun = { done: Promise.resolve(), failures: 0, refusals: new Map() };
    const one = async (chunk: string[]) => {
      for (const k of chunk) this.unsettled.add(k);
      const events = chunk.map((k) => ({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: k, idempotency_key: k }));
      for (let attempt = 0; attempt < (o.tries ?? 200); attempt++) {
        const base = target();
        if (!base) { await sleep(100); continue; }
        try {
          const r = await adminCall(base, 'POST', '/admin/v1/events/batch', { events }, 20_000);
          if (r.status === 202) {
            r.body.events.forEach((e: any, i: number) => {
              this.accepted.set(chunk[i]!, { tenant: tenant.id, eventId: e.id });
              this.unsettled.delete(chunk[i]!);
            });
            return;
          }
          const ra = r.headers.get('retry-after');
          const what = `${r.status}${ra ? ` (Retry-After ${ra})` : ''}`;
          run.refusals.set(what, (run.refusals.get(what) ?? 0) + 1);
        } catch (err) {
          // No answer: the batch may or may not be stored; the idempotency keys make trying again safe.
          const what = `no answer (${(err as Error).name})`;
          run.refusals.set(what, (run.refusals.get(what) ?? 0) + 1);
        }
        run.failures++;
        await sleep(100);
      }
    };
    run.done = (async () => {
      let i = 0;
      const worker = async () => {
        while (i < chunks.length) {
          await one(chunks[i++]!);
          if (o.pauseMs) await sleep(o.pauseMs);
        }
      };
      await Promise.all(Array.from({ length: o.concurrency ?? 2 }, worker));
    })();
    return run;
  }

  /** Accepted (route, key) pairs not yet acknowledged. */
  missing(rx: RecordingReceiver): { route: string; key: string }[] {
    const out: { route: string; key: string }[] = [];
    for (const [key, a] of this.accepted) for (const route of this.routesOf.get(a.tenant) ?? []) if (!rx.acked(route, key)) out.push({ route, key });
    return out;
  }

  /** Waits until every accepted event is acknowledged by every matching route; answers how long it took. */
  async drained(rx: RecordingReceiver, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
      if (this.missing(rx).length === 0) return Date.now() - t0;
      await sleep(100);
    }
    return -1;
  }

  /** The result row. `store` from checkStore; `recoverMs` from RecordingReceiver.recoveryMs. */
  result(scenario: string, rx: RecordingReceiver, o: { store?: StoreCheck; recoverMs?: number; notes?: string } = {}): ChaosResult {
    let duplicates = 0;
    let overlaps = 0;
    let unaccepted = 0;
    const dupByRoute = new Map<string, number>();
    for (const r of rx.allRoutes()) {
      overlaps += r.overlapLog.length;
      unaccepted += r.unparsable;
      for (const times of r.oks.values()) if (times.length > 1) {
        duplicates += times.length - 1;
        dupByRoute.set(r.name, (dupByRoute.get(r.name) ?? 0) + times.length - 1);
      }
      for (const key of r.arrivals.keys()) if (!this.accepted.has(key) && !this.unsettled.has(key)) unaccepted++;
    }
    // A key still unsettled (never answered 202) that arrived anyway was stored without Herald saying so.
    for (const r of rx.allRoutes()) for (const key of r.arrivals.keys()) if (this.unsettled.has(key)) unaccepted++;
    const missing = this.missing(rx);
    const byRoute = new Map<string, number>();
    for (const m of missing) byRoute.set(m.route, (byRoute.get(m.route) ?? 0) + 1);
    return {
      scenario,
      events: this.accepted.size,
      lost: missing.length,
      duplicates,
      overlaps,
      unaccepted,
      storeFaults: o.store ? o.store.faults : 0,
      maxRecoverMs: o.recoverMs ?? 0,
      unsettled: this.unsettled.size,
      notes: [o.notes, duplicates && dupByRoute.size < rx.allRoutes().length ? `duplicates by route: ${[...dupByRoute].map(([r, n]) => `${r} ${n}`).join(', ')}` : '', missing.length ? `lost by route: ${[...byRoute].map(([r, n]) => `${r} ${n}`).join(', ')}` : '', this.unsettled.size ? `${this.unsettled.size} events never accepted` : '', o.store && o.store.faults > 0 ? o.store.detail : ''].filter(Boolean).join('; ') || undefined,
    };
  }
}

// ---------------------------------------------------------------- store check

export interface StoreCheck {
  faults: number;
  /** In flight (leased, pending) with the lease run out, while nothing is left to deliver. */
  expiredLeases: number;
  /** A lease on a delivery that is finished or held. */
  leasedFinished: number;
  /** Deliveries still pending or held after the drain. */
  waiting: number;
  /** Deliveries the store calls succeeded whose (route, key) the receiver never acknowledged. */
  phantom: number;
  detail: string;
}

/**
 * Reads the store behind `env` directly (the SQLite file or the PostgreSQL schema) after a
 * drain. With `rx`, also checks that each succeeded delivery to one of its routes was acknowledged.
 * `expectWaiting`: deliveries allowed to be still waiting (subscriptions that are meant to fail).
 * Tried again for up to `settleMs` (5 s) while it finds faults, since outcomes are recorded after the answer.
 */
export async function checkStore(env: Env, rx?: RecordingReceiver, o: { expectWaiting?: number; settleMs?: number } = {}): Promise<StoreCheck> {
  // The receiver sees an answer before Herald records it: give the last outcomes time to land.
  const end = Date.now() + (o.settleMs ?? 5000);
  for (;;) {
    const c = await checkStoreOnce(env, rx, o.expectWaiting ?? 0);
    if (c.faults === 0 || Date.now() >= end) {
      if (rx) await confirmOverlaps(env, rx);
      return c;
    }
    await sleep(250);
  }
}

/**
 * Each overlap the receiver saw, against Herald's own attempts. A receiver whose event loop is
 * held up (the quick suite runs its scenarios side by side, their receivers in one process)
 * reads requests long after they were sent: the full suite once had an attempt sent at 0 ms and
 * given up at 1,436 ms, its retry sent at 2,592 ms and answered in 88 ms, and the receiver
 * reading the first at 2,655 ms and the retry 4 ms later, the first's close not yet read. An
 * overlap is dropped only when the store disproves it: every arrival has an attempt recorded,
 * all by one process (one clock: attempts of two processes on stepped clocks cannot be put in
 * order), each begun after the one before it ended. Anything else stands.
 */
/** The attempts Herald recorded for one (route, event key) of this receiver, in order. */
function attemptsOf(store: SqlStore, rx: RecordingReceiver, route: string, key: string) {
  return store.db.all<{ attempt_no: number; started_at: number | string; duration_ms: number | string | null; status_code: number | null; error_kind: string | null; error: string | null; worker: string | null }>(
    `SELECT a.attempt_no, a.started_at, a.duration_ms, a.status_code, a.error_kind, a.error, a.worker FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
     JOIN events e ON e.id = d.event_id JOIN subscriptions s ON s.id = d.subscription_id WHERE e.entity_id = $1 AND s.url = $2 ORDER BY a.attempt_no`,
    [key, `${rx.base}/r/${route}`],
  );
}

async function confirmOverlaps(env: Env, rx: RecordingReceiver): Promise<void> {
  const routes = rx.allRoutes().filter((r) => r.overlapLog.length > 0);
  if (routes.length === 0) return;
  const store = await openStore({ databaseUrl: env.DATABASE_URL ?? null, databaseSchema: env.HERALD_DATABASE_SCHEMA ?? 'public', dataDir: env.HERALD_DATA_DIR! });
  try {
    for (const r of routes) {
      const kept: typeof r.overlapLog = [];
      for (const o of r.overlapLog) {
        const attempts = await attemptsOf(store, rx, r.name, o.key);
        const oneProcess = new Set(attempts.map((a) => a.worker)).size === 1;
        const inTurn = attempts.every((a, i) => i === 0 || Number(a.started_at) >= Number(attempts[i - 1]!.started_at) + Number(attempts[i - 1]!.duration_ms ?? Infinity));
        const disproved = attempts.length >= (r.arrivals.get(o.key) ?? 0) && oneProcess && inTurn;
        if (!disproved) kept.push(o);
      }
      r.overlapLog = kept;
    }
  } finally {
    await store.close();
  }
}

async function checkStoreOnce(env: Env, rx: RecordingReceiver | undefined, expectWaiting: number): Promise<StoreCheck> {
  const store = await openStore({ databaseUrl: env.DATABASE_URL ?? null, databaseSchema: env.HERALD_DATABASE_SCHEMA ?? 'public', dataDir: env.HERALD_DATA_DIR! });
  try {
    const now = Date.now();
    const rows = await store.db.all<{ status: string; leased: number | boolean; expired: number | boolean; n: number | string }>(
      `SELECT status, lease_token IS NOT NULL AS leased, (next_attempt_at IS NOT NULL AND next_attempt_at <= $1) AS expired, COUNT(*) AS n
       FROM deliveries GROUP BY status, lease_token IS NOT NULL, (next_attempt_at IS NOT NULL AND next_attempt_at <= $1)`,
      [now],
    );
    let expiredLeases = 0, leasedFinished = 0, waiting = 0;
    for (const r of rows) {
      const n = Number(r.n);
      const leased = Boolean(Number(r.leased));
      if (r.status === 'pending' && leased && Boolean(Number(r.expired))) expiredLeases += n;
      if (leased && r.status !== 'pending') leasedFinished += n;
      if (r.status === 'pending' || r.status === 'held') waiting += n;
    }
    waiting = Math.max(0, waiting - expectWaiting);
    let phantom = 0;
    if (rx) {
      const ok = await store.db.all<{ url: string; data: string }>(
        `SELECT s.url, e.data, e.entity_id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id JOIN events e ON e.id = d.event_id
         WHERE d.status = 'succeeded' AND s.url LIKE $1`,
        [`${rx.base}/r/%`],
      );
      for (const r of ok as any[]) {
        const route = /\/r\/([^/?]+)/.exec(r.url)?.[1] ?? '';
        if (!rx.acked(route, r.entity_id)) phantom++;
      }
    }
    const faults = expiredLeases + leasedFinished + waiting + phantom;
    return { faults, expiredLeases, leasedFinished, waiting, phantom, detail: `store: ${expiredLeases} expired leases, ${leasedFinished} leases on finished, ${waiting} waiting, ${phantom} succeeded unacknowledged` };
  } finally {
    await store.close();
  }
}

/**
 * Debugging aid (HERALD_CHAOS_DEBUG=1): prints, for the overlapping pairs and a few of the
 * duplicated ones, what the receiver saw and the attempts the store recorded.
 */
export async function explain(env: Env, rx: RecordingReceiver, limit = 5): Promise<void> {
  if (!process.env.HERALD_CHAOS_DEBUG) return;
  const pairs: { route: string; key: string; why: string; seen: unknown }[] = [];
  for (const r of rx.allRoutes()) {
    for (const o of r.overlapLog.slice(0, limit)) pairs.push({ route: r.name, key: o.key, why: 'overlap', seen: o });
    let n = 0;
    for (const [key, times] of r.oks) if (times.length > 1 && n++ < limit) pairs.push({ route: r.name, key, why: 'duplicate', seen: { oks: times, arrivals: r.arrivals.get(key) } });
  }
  if (pairs.length === 0) return;
  const store = await openStore({ databaseUrl: env.DATABASE_URL ?? null, databaseSchema: env.HERALD_DATABASE_SCHEMA ?? 'public', dataDir: env.HERALD_DATA_DIR! });
  try {
    for (const p of pairs) {
      const rows = await attemptsOf(store, rx, p.route, p.key);
      console.log(`chaos ${p.why} ${p.route} ${p.key}`, JSON.stringify(p.seen), JSON.stringify(rows));
    }
  } finally {
    await store.close();
  }
}

// ---------------------------------------------------------------- table

const COLUMNS: [keyof ChaosResult, string][] = [
  ['scenario', 'scenario'], ['events', 'events'], ['lost', 'lost'], ['duplicates', 'duplicates'], ['overlaps', 'overlaps'],
  ['unaccepted', 'unaccepted'], ['storeFaults', 'store faults'], ['maxRecoverMs', 'max recover ms'], ['notes', 'notes'],
];

/** A Markdown table of the rows (it reads as plain text too). */
export function formatTable(rows: ChaosResult[]): string {
  const cells = rows.map((r) => COLUMNS.map(([k]) => String(r[k] ?? '')));
  const head = COLUMNS.map(([, h]) => h);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((v, i) => (i === 0 || i === c.length - 1 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i === 0 || i === widths.length - 1 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|')}|`, ...cells.map(line)].join('\n');
}
