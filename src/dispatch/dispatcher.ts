import type { Logger } from 'pino';
import type { Envelope } from '../dialects/envelope.ts';
import type { AttemptRecord, ClaimedDelivery, Outcome, Subscription } from '../domain/model.ts';
import { nextRetryDelayMs, retriesUsed, retryAfterMs, throttleIsFree, type RetryPolicy } from '../domain/retry.ts';
import type { Dialect } from '../domain/states.ts';
import type { SecretBox } from '../secrets.ts';
import type { ClaimRoom, Store } from '../store/store.ts';
import type { Poster, SendResult } from './sender.ts';
import { systemClock, type Clock } from '../domain/clock.ts';
import { ClockWatch } from './clockWatch.ts';
import { recordedHeaders } from './requestHeaders.ts';
import { logAttempt, type AttemptReport, type DeliveryObserver } from './observer.ts';
import { Breakers, type BreakerPolicy } from './breaker.ts';

export interface DispatcherOptions {
  store: Store;
  sender: Poster;
  box: SecretBox;
  envelopes: Partial<Record<Dialect, Envelope>>;
  retry: RetryPolicy;
  log: Logger;
  leaseMs: number;
  pollIntervalMs: number;
  claimBatch: number;
  /**
   * After a claim that came back short, the least time before the next one begins
   * (HERALD_CLAIM_COALESCE_MS): under a stream of single publishes each wakes the loop, and
   * without it every event costs a claim of its own. 0: claim at each wake. A full claim is
   * followed at once.
   */
  claimCoalesceMs?: number;
  maxInFlight: number;
  maxInFlightPerEndpoint: number;
  userAgent: string;
  /** Names this process in the attempt records. */
  worker: string;
  /** The longest one attempt can take (twice the request timeout). */
  attemptBoundMs: number;
  /** Told of every attempt (the metrics); none when metrics are off. */
  observer?: DeliveryObserver;
  /** What due times, leases and signing timestamps are read on; the store must share it. */
  clock?: Clock;
  /** The per-subscription circuit breaker; absent: off (Retry-After still holds a subscription back). */
  breaker?: BreakerPolicy;
  /**
   * Where deliveries held back by a breaker are set aside, so that claims need not step over
   * them (src/store/queries/breaker.ts); absent: they stay due and claims pass over them.
   */
  setAside?: {
    setAside(subscriptionId: string, until: number, keep: number): Promise<number>;
    bringBack(subscriptionId: string, until: number): Promise<number>;
  };
}

/** Deliveries of a held-back subscription left due, for its probes; the rest are set aside. */
const KEEP_DUE = 100;
/** How far ahead they are set aside; brought back at once when the breaker closes. */
const ASIDE_MIN_MS = 60_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Breakers time cool-downs and Retry-After holds, which are lengths of real time: a step of Herald's clock must not stretch them. */
const mono = () => performance.now();

type Completion = { claim: ClaimedDelivery; attempt: AttemptRecord; outcome: Outcome };

/** The delivery as decideOutcome needs it: its attempts before this one, the free ones among them, its creation. */
export type DeliveryTally = { attempts: number; throttled?: number; createdAt: number };

/**
 * What an attempt's result means for its delivery. A 429 or 503 with Retry-After is tried
 * again when the receiver asked, without using up a retry, while the delivery is younger
 * than the schedule's span; after that it counts as any failure does.
 */
export function decideOutcome(res: SendResult, d: DeliveryTally, retry: RetryPolicy, now: number, waitMs = retryAfterMs(retry, res.statusCode, res.retryAfter, now)): Outcome {
  const code = res.statusCode;
  if (code !== null && code >= 200 && code < 300) return { kind: 'succeeded' };
  if (code === 410) return { kind: 'gone' };
  if (waitMs !== null && throttleIsFree(retry, d.createdAt, now)) return { kind: 'retry', at: now + waitMs, throttled: true };
  const used = retriesUsed(retry, d.attempts + 1, d.throttled ?? 0, d.createdAt, now);
  const delay = nextRetryDelayMs(retry, used, waitMs === null ? null : waitMs / 1000);
  return delay === null ? { kind: 'failed' } : { kind: 'retry', at: now + delay };
}

/**
 * Claims due deliveries under a lease, sends them, and records each attempt. Woken early
 * by publishes (in-process and, on PostgreSQL, by NOTIFY); polls as a fallback.
 */
export class Dispatcher {
  private readonly o: DispatcherOptions;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private woken = false;
  /** When the last claim began (monotonic), and whether it came back with less than it asked for. */
  private lastClaimAt = -Infinity;
  private lastShort = false;
  /** The next claim goes at once, without the wait after a short one (wake(true)). */
  private skipGap = false;
  /** Ends the wait between claims early; set only during it (stop). */
  private endGap: (() => void) | null = null;
  private wakeUp: (() => void) | null = null;
  /** Attempts being sent now. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Claimed deliveries not yet finished: being sent, or waiting for their subscription's slot. */
  private claimed = 0;
  private readonly sending = new Map<string, number>();
  private readonly waiting = new Map<string, ClaimedDelivery[]>();
  private readonly outbox: { item: Completion; resolve: (ok: boolean) => void; reject: (err: unknown) => void }[] = [];
  private flushing: Promise<void> | null = null;
  private readonly secretCache = new Map<string, { updatedAt: number; secrets: { plain: string; expiresAt: number | null }[] }>();

  /**
   * Claims a subscription may keep waiting for a slot: as many as it may send, so that a
   * busy subscription is refilled in claims of half that, not one slot at a time.
   */
  private readonly queueLimit: number;
  /** When each claim's lease runs out. */
  private readonly leaseEnds = new WeakMap<ClaimedDelivery, number>();
  /**
   * The claims this process holds until their outcome is recorded, by delivery. A clock
   * stepped forward past the lease makes them look due again, and this process would claim
   * them a second time while they are still being sent.
   */
  private readonly held = new Map<string, ClaimedDelivery>();

  private readonly clock: Clock;
  /** Which subscriptions are held back after failures or a Retry-After, and their probes. */
  private readonly breakers: Breakers;
  /** Set when a claim took a probe: the claim's window may have been spent on that subscription's rows. */
  private probed = false;
  /** For each held-back subscription, the times its deliveries were set aside until, and when that was last done. */
  private readonly asideUntil = new Map<string, { untils: Set<number>; lastAt: number }>();
  private readonly asideMs: number;

  constructor(o: DispatcherOptions) {
    this.o = o;
    this.clock = o.clock ?? systemClock;
    this.queueLimit = o.maxInFlightPerEndpoint;
    this.breakers = new Breakers(o.breaker ?? { failures: 0, firstCoolMs: 1000, maxCoolMs: 30_000 });
    this.asideMs = Math.max(ASIDE_MIN_MS, 10 * (o.breaker?.maxCoolMs ?? 0));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /**
   * Something became due: look now rather than at the next poll. `now`: without the wait
   * between claims either. That wait gathers publishes into one claim; the next delivery of
   * an entity's line becomes due only when the one before it is finished, so it has nothing
   * to gather, and each step of a line would wait it out (a line ran at 200 a second).
   */
  wake = (now = false): void => {
    this.woken = true;
    if (now) {
      this.skipGap = true;
      this.endGap?.();
    }
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  };

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Stops claiming, hands back what waits, then lets in-flight attempts finish for up to `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.running = false;
    this.endGap?.();
    this.wake();
    await this.loopDone;
    const waiting = [...this.waiting.values()].flat();
    this.waiting.clear();
    await Promise.all(waiting.map((c) => this.giveBack(c, this.clock.now())));
    // What this process set aside behind its breakers is due again for whoever claims next.
    const held = [...this.asideUntil];
    this.asideUntil.clear();
    await Promise.all(held.map(([id, e]) => this.bringBackAll(id, e.untils)));
    if (this.inFlight.size > 0) await Promise.race([Promise.all(this.inFlight), sleep(graceMs)]);
  }

  private wait(ms: number): Promise<void> {
    if (this.woken || !this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wakeUp = null; resolve(); }, ms);
      this.wakeUp = () => { clearTimeout(t); resolve(); };
    });
  }

  private async loop(): Promise<void> {
    let backoff = 0;
    // A clock that jumps forward reads other processes' live leases as run out: within a lease
    // of the jump, take over only leases run out on the clock as it was.
    const watch = new ClockWatch(this.clock, this.o.leaseMs, { log: this.o.log });
    while (this.running) {
      const room = this.o.maxInFlight - this.claimed;
      if (room <= 0) {
        await this.wait(this.o.pollIntervalMs);
        this.woken = false;
        continue;
      }
      const want = Math.min(this.o.claimBatch, room);
      if (this.lastShort && !this.skipGap) {
        await this.gap();
        if (!this.running) break;
      }
      this.skipGap = false;
      this.woken = false;
      let claims: ClaimedDelivery[];
      // The store's lease runs from when it took the claim: timed from the answer instead, a
      // slow claim would leave less lease than this process believes it holds.
      const claimedAt = this.clock.now();
      const seen = watch.read();
      try {
        this.lastClaimAt = mono();
        claims = await this.o.store.claimDue(want, this.o.leaseMs, this.room(), { leaseCutoff: seen.leaseCutoff });
        this.lastShort = claims.length < want;
        backoff = 0;
      } catch (err) {
        // Cannot claim: back off and try again; nothing is lost, the deliveries stay due.
        backoff = Math.min(backoff ? backoff * 2 : 100, 5000);
        this.o.log.error({ err }, 'claiming due deliveries failed; retrying in %d ms', backoff);
        // Wakeable: a publish that succeeds says the store is back, and a stop need not sit out the backoff.
        await this.wait(backoff);
        this.woken = false;
        continue;
      }
      const leaseEnd = claimedAt + this.o.leaseMs;
      for (const c of claims) {
        const mine = this.held.get(c.delivery.id);
        if (mine) {
          // Already ours: the attempt under way takes the new lease rather than a second send.
          mine.leaseToken = c.leaseToken;
          this.leaseEnds.set(mine, leaseEnd);
          continue;
        }
        this.held.set(c.delivery.id, c);
        this.leaseEnds.set(c, leaseEnd);
        this.admit(c);
      }
      // A full claim whose deliveries all went to subscriptions that are now full counts as a
      // short one: the next claim would leave them out, and passing over a full subscription's
      // due backlog costs the claim a read of every row of it (about 100 ms at 990,000 on
      // SQLite, where that blocks the process). Its refill wakes the loop, as does a publish.
      const filledOnly = claims.length >= want && this.fillsOnlyFull(claims);
      if (filledOnly) this.lastShort = true;
      // A claim that took a probe may have read a window of that subscription's rows and
      // left others due: look again at once, now that the subscription is out of the claim.
      const probed = this.probed;
      this.probed = false;
      if (probed) this.lastShort = false;
      const short = claims.length < want || filledOnly;
      // Meanwhile the leases left alone look due, and the idle wait would spin on them: poll instead.
      if (short && seen.jumpMs > 0) { await this.wait(this.o.pollIntervalMs); continue; }
      if (short && !probed) await this.idle();
    }
  }

  /**
   * Waits out what is left of the least time between claims. Wakes do not end it: the
   * publishes that arrive meanwhile are what the next claim gathers. Only stop() does.
   */
  private async gap(): Promise<void> {
    const ms = this.lastClaimAt + (this.o.claimCoalesceMs ?? 0) - mono();
    if (ms <= 0 || !this.running) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { this.endGap = null; resolve(); }, ms);
      this.endGap = () => { clearTimeout(t); this.endGap = null; resolve(); };
    });
  }

  private async idle(): Promise<void> {
    // Woken while claiming (a publish, a freed slot): the wait below would end at once, so
    // there is nothing to ask the store for.
    if (this.woken || !this.running) return;
    let ms = this.o.pollIntervalMs;
    // An open breaker's next probe wakes the loop. One whose turn has come already had its
    // chance in the claim just made: nothing of it is due, and it waits like the rest.
    const untilProbe = (this.breakers.nextProbeAt() ?? Infinity) - mono();
    if (untilProbe > 0) ms = Math.min(ms, untilProbe);
    // With a subscription full, what is due may be its own: a freed slot wakes the loop instead.
    if (![...this.room().bySubscription.values()].some((n) => n <= 0)) {
      try {
        const next = await this.o.store.nextDueAt();
        if (next !== null) ms = Math.max(0, Math.min(ms, next - this.clock.now()));
      } catch {
        // The poll interval is the fallback.
      }
    }
    if (ms > 0) await this.wait(ms);
  }

  /** Whether every subscription these claims went to has no room left for the next claim. */
  private fillsOnlyFull(claims: ClaimedDelivery[]): boolean {
    const room = this.room().bySubscription;
    return claims.every((c) => (room.get(c.subscription.id) ?? 1) <= 0);
  }

  /**
   * What each busy subscription can still take: its cap and queue, less what it holds.
   * A busy subscription is refilled only once half its queue has room, so that claims come
   * in useful batches rather than one per freed slot.
   */
  private room(): ClaimRoom {
    const full = this.o.maxInFlightPerEndpoint + this.queueLimit;
    const bySubscription = new Map<string, number>();
    for (const [id, n] of this.sending) {
      const r = full - n - (this.waiting.get(id)?.length ?? 0);
      bySubscription.set(id, r >= Math.ceil(this.queueLimit / 2) ? r : 0);
    }
    // An open breaker: nothing, or its one probe (only once the subscription has a free slot).
    for (const [id, r] of this.breakers.room(mono())) {
      const busy = (this.sending.get(id) ?? 0) >= this.o.maxInFlightPerEndpoint;
      bySubscription.set(id, busy ? 0 : r);
    }
    return { bySubscription, otherwise: full };
  }

  /**
   * Sends a claimed delivery now if its subscription has a free slot, else queues it
   * behind that subscription's in-flight ones (up to `queueLimit`); past that the claim
   * goes straight back to the store, and later claims leave the subscription out until
   * it has room. So one slow endpoint holds at most its cap plus a short queue of the
   * process's slots, and the rest keep flowing.
   */
  private admit(c: ClaimedDelivery): void {
    this.claimed++;
    const id = c.subscription.id;
    // Behind an open breaker the claim goes back, still due, no retry used: only the probe goes.
    const may = this.breakers.mayStart(id, c.delivery.id, mono(), c.failureStreak);
    if (this.breakers.isOpen(id)) this.probed = true;
    if (!may) {
      void this.giveBack(c, this.clock.now());
      return;
    }
    if ((this.sending.get(id) ?? 0) < this.o.maxInFlightPerEndpoint) return this.launch(c);
    const q = this.waiting.get(id) ?? [];
    if (q.length < this.queueLimit) {
      q.push(c);
      this.waiting.set(id, q);
      return;
    }
    void this.giveBack(c, this.clock.now());
  }

  private launch(c: ClaimedDelivery): void {
    const id = c.subscription.id;
    // A claim that waited so long that its lease could run out mid-attempt goes back instead:
    // another claimer could otherwise send it at the same time. So does one that waited while
    // its subscription's breaker opened.
    if ((this.leaseEnds.get(c) ?? 0) - this.clock.now() < this.o.attemptBoundMs || !this.breakers.mayStart(id, c.delivery.id, mono())) {
      void this.giveBack(c, this.clock.now());
      return;
    }
    this.sending.set(id, (this.sending.get(id) ?? 0) + 1);
    const p = this.deliver(c, () => this.answered(id));
    this.inFlight.add(p);
    void p.finally(() => {
      this.inFlight.delete(p);
      const wasFull = this.claimed >= this.o.maxInFlight;
      this.claimed--;
      // The process had no room for a claim: now it has.
      if (wasFull) this.wake();
    });
  }

  /**
   * An attempt to subscription `id` has its answer: its slot goes to the next waiting claim
   * now, while the outcome is still being recorded, since the cap bounds what the receiver
   * sees at once, and recording does not involve the receiver.
   */
  private answered(id: string): void {
    const q = this.waiting.get(id);
    const next = q?.shift();
    if (q && q.length === 0) this.waiting.delete(id);
    const n = (this.sending.get(id) ?? 1) - 1;
    if (n <= 0) this.sending.delete(id);
    else this.sending.set(id, n);
    if (next && this.running) this.launch(next);
    else if (next) void this.giveBack(next, this.clock.now());
    // Wake the claim loop only when this makes a claim worthwhile: this subscription just
    // reached its refill threshold, or holds nothing.
    const held = (this.sending.get(id) ?? 0) + (this.waiting.get(id)?.length ?? 0);
    if (held === this.o.maxInFlightPerEndpoint + this.queueLimit - Math.ceil(this.queueLimit / 2) || held === 0) this.wake();
  }

  /**
   * Group commit: outcomes gather until the end of the current event-loop turn (and while
   * a previous write is under way), then go to the store together in one transaction.
   * SQLite writes synchronously, so without the turn's wait nothing could ever gather.
   */
  private record(item: Completion): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.outbox.push({ item, resolve, reject });
      this.flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    while (this.outbox.length > 0) {
      const batch = this.outbox.splice(0, 500);
      try {
        const recorded = await this.o.store.completeMany(batch.map((b) => b.item));
        // Let go at once, before anything else runs: a claim from now on is a new one.
        batch.forEach((b, i) => { if (recorded[i]) this.held.delete(b.item.claim.delivery.id); });
        batch.forEach((b, i) => b.resolve(recorded[i]!));
      } catch (err) {
        batch.forEach((b) => b.reject(err));
      }
    }
    this.flushing = null;
  }

  /** Makes what was set aside for a subscription, until each of `untils`, due now; answers how many. A failure is logged: they are due when set. */
  private async bringBackAll(id: string, untils: Iterable<number>): Promise<number> {
    const aside = this.o.setAside;
    if (!aside) return 0;
    try {
      return (await Promise.all([...untils].map((u) => aside.bringBack(id, u)))).reduce((a, b) => a + b, 0);
    } catch (err) {
      this.o.log.error({ err, subscription: id }, 'bringing back deliveries set aside failed; they are due when set');
      return 0;
    }
  }

  /**
   * A subscription was held back: set its waiting deliveries aside (at most once a second),
   * so that claims do not step over them. It closed: bring them back, due now.
   */
  private asideChanged(id: string, change: 'held' | 'closed', now: number): void {
    const aside = this.o.setAside;
    if (!aside) return;
    const known = this.asideUntil.get(id);
    if (change === 'closed') {
      if (!known) return;
      this.asideUntil.delete(id);
      void this.bringBackAll(id, known.untils).then((n) => { if (n > 0) this.wake(); });
      return;
    }
    if (known && now - known.lastAt < 1000) return;
    const until = now + this.asideMs;
    const entry = known ?? { untils: new Set<number>(), lastAt: now };
    // Those already past are due again, and need no bringing back.
    for (const u of entry.untils) if (u <= now) entry.untils.delete(u);
    entry.untils.add(until);
    entry.lastAt = now;
    this.asideUntil.set(id, entry);
    void aside.setAside(id, until, KEEP_DUE).then((n) => {
      // Closed meanwhile: what was just set aside comes back too.
      if (!this.breakers.isOpen(id) && n > 0) return aside.bringBack(id, until);
    }).catch((err: unknown) => this.o.log.error({ err, subscription: id }, 'setting aside deliveries behind a breaker failed; they stay due'));
  }

  /** Returns a claim to the store unsent, due again at `at`. */
  private async giveBack(c: ClaimedDelivery, at: number): Promise<void> {
    this.held.delete(c.delivery.id);
    this.breakers.released(c.subscription.id, c.delivery.id);
    try {
      await this.o.store.release(c, at);
    } catch (err) {
      this.o.log.error({ err, delivery: c.delivery.id }, 'handing a delivery back failed; its lease will run out');
    } finally {
      this.claimed--;
    }
  }

  private secretsFor(s: Subscription, now: number): string[] {
    let cached = this.secretCache.get(s.id);
    if (!cached || cached.updatedAt !== s.updatedAt) {
      if (this.secretCache.size > 10_000) this.secretCache.clear();
      cached = { updatedAt: s.updatedAt, secrets: s.secrets.map((x) => ({ plain: this.o.box.open(x.enc), expiresAt: x.expiresAt })) };
      this.secretCache.set(s.id, cached);
    }
    return cached.secrets.filter((x) => x.expiresAt === null || x.expiresAt > now).map((x) => x.plain);
  }

  /**
   * Renders, signs and POSTs one delivery. A delivery that cannot be rendered is a recorded failure.
   * `sent` receives the headers as the attempt's record keeps them, and the start on Herald's clock.
   */
  private async send(c: ClaimedDelivery, sent: { headers?: Record<string, string>; startedAt?: number } = {}): Promise<SendResult> {
    const now = this.clock.now();
    sent.startedAt = now;
    let body: string;
    const headers: Record<string, string> = { 'user-agent': this.o.userAgent };
    try {
      const envelope = this.o.envelopes[c.subscription.dialect];
      if (!envelope) throw new Error(`no envelope for dialect ${c.subscription.dialect}`);
      const r = envelope.render(c.event, c.subscription, { secrets: this.secretsFor(c.subscription, now), nowMs: now, tenantNumber: c.tenantNumber });
      for (const [k, v] of Object.entries(c.subscription.headers)) headers[k.toLowerCase()] = v;
      Object.assign(headers, r.headers);
      sent.headers = recordedHeaders(headers, c.subscription.headers);
      body = r.body;
    } catch (err) {
      this.o.log.error({ err, delivery: c.delivery.id }, 'rendering a delivery failed');
      return { statusCode: null, retryAfter: undefined, responseBody: null, errorKind: 'internal', error: `rendering failed: ${(err as Error).message}`, startedAt: now, durationMs: 0 };
    }
    return this.o.sender.post(c.subscription.url, headers, body);
  }

  private async deliver(c: ClaimedDelivery, answered: () => void): Promise<void> {
    let report: AttemptReport | null = null;
    let failure: unknown;
    try {
      let res: SendResult;
      const sent: { headers?: Record<string, string>; startedAt?: number } = {};
      let heard = false;
      // What the answer's Retry-After asks for, read once for the breaker and the outcome.
      let waitMs: number | null = null;
      try {
        res = await this.send(c, sent);
        heard = true;
        // The breaker hears first, so that a claim waiting for this slot sees it open.
        const now = this.clock.now(), code = res.statusCode;
        waitMs = retryAfterMs(this.o.retry, code, res.retryAfter, now);
        const change = this.breakers.answered(c.subscription.id, c.delivery.id, code !== null && code >= 200 && code < 300 ? { ok: true }
          : { ok: false, retryAfterMs: waitMs }, mono());
        if (change) this.asideChanged(c.subscription.id, change, now);
      } finally {
        // No answer at all (a sender fault): a probe must not hold its breaker shut for ever.
        if (!heard) this.breakers.released(c.subscription.id, c.delivery.id);
        answered();
      }
      let outcome = decideOutcome(res, c.delivery, this.o.retry, this.clock.now(), waitMs);
      report = { claim: c, result: res, outcome: outcome.kind, recorded: null };
      const exhaustedStatus = this.o.envelopes[c.subscription.dialect]?.exhaustedStatus;
      // A dialect with its own out-of-service status uses it for 410 Gone too.
      if ((outcome.kind === 'failed' || outcome.kind === 'gone') && exhaustedStatus) outcome = { kind: 'failed', exhaustedStatus };
      const attempt: AttemptRecord = {
        // On Herald's clock, like the due times it is compared with (the sender's is the system's).
        startedAt: sent.startedAt ?? res.startedAt, durationMs: res.durationMs, statusCode: res.statusCode,
        errorKind: res.errorKind, error: res.error, responseBody: res.responseBody, worker: this.o.worker,
        requestHeaders: sent.headers ?? null,
      };
      // The lease as it is now: this process may claim the delivery again while it is recorded.
      let lease = { ...c };
      let ok = await this.record({ claim: lease, attempt, outcome });
      if (!ok && c.leaseToken !== lease.leaseToken) {
        lease = { ...c };
        ok = await this.record({ claim: lease, attempt, outcome });
      }
      report.recorded = ok;
    } catch (err) {
      // Cannot record the outcome: the lease will run out and the delivery will be sent again.
      failure = err;
      if (!report) this.o.log.error({ err, delivery: c.delivery.id }, 'recording a delivery outcome failed');
    }
    if (this.held.get(c.delivery.id) === c) this.held.delete(c.delivery.id);
    if (report) this.observe(report, failure);
  }

  /** Every attempt logs exactly one line, and the observer hears of it. */
  private observe(r: AttemptReport, err?: unknown): void {
    logAttempt(this.o.log, r, err);
    this.o.observer?.attempt(r);
  }
}
