import type { Logger } from 'pino';
import type { Envelope } from '../dialects/envelope.ts';
import type { ClaimedDelivery, Outcome, Subscription } from '../domain/model.ts';
import { nextRetryDelayMs, parseRetryAfter, type RetryPolicy } from '../domain/retry.ts';
import type { Dialect } from '../domain/states.ts';
import type { SecretBox } from '../secrets.ts';
import type { Store } from '../store/store.ts';
import type { SendResult, Sender } from './sender.ts';

export interface DispatcherOptions {
  store: Store;
  sender: Sender;
  box: SecretBox;
  envelopes: Partial<Record<Dialect, Envelope>>;
  retry: RetryPolicy;
  log: Logger;
  leaseMs: number;
  pollIntervalMs: number;
  claimBatch: number;
  maxInFlight: number;
  maxInFlightPerEndpoint: number;
  userAgent: string;
  /** Names this process in the attempt records. */
  worker: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What an attempt's result means for its delivery. */
export function decideOutcome(res: SendResult, attemptsMade: number, retry: RetryPolicy, now: number): Outcome {
  const code = res.statusCode;
  if (code !== null && code >= 200 && code < 300) return { kind: 'succeeded' };
  if (code === 410) return { kind: 'gone' };
  const retryAfter = code === 429 || code === 503 ? parseRetryAfter(res.retryAfter, now) : null;
  const delay = nextRetryDelayMs(retry, attemptsMade, retryAfter);
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
  private wakeUp: (() => void) | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly perSubscription = new Map<string, number>();
  private readonly secretCache = new Map<string, { updatedAt: number; secrets: { plain: string; expiresAt: number | null }[] }>();

  constructor(o: DispatcherOptions) {
    this.o = o;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Something became due: look now rather than at the next poll. */
  wake = (): void => {
    this.woken = true;
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  };

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Stops claiming, then lets in-flight attempts finish for up to `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.running = false;
    this.wake();
    await this.loopDone;
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
    while (this.running) {
      const room = this.o.maxInFlight - this.inFlight.size;
      if (room <= 0) {
        await this.wait(this.o.pollIntervalMs);
        this.woken = false;
        continue;
      }
      const want = Math.min(this.o.claimBatch, room);
      this.woken = false;
      let claims: ClaimedDelivery[];
      try {
        claims = await this.o.store.claimDue(want, this.o.leaseMs);
        backoff = 0;
      } catch (err) {
        // Cannot claim: back off and try again; nothing is lost, the deliveries stay due.
        backoff = Math.min(backoff ? backoff * 2 : 100, 5000);
        this.o.log.error({ err }, 'claiming due deliveries failed; retrying in %d ms', backoff);
        await sleep(backoff);
        continue;
      }
      for (const c of claims) this.track(this.deliver(c));
      if (claims.length < want) await this.idle();
    }
  }

  private async idle(): Promise<void> {
    let ms = this.o.pollIntervalMs;
    try {
      const next = await this.o.store.nextDueAt();
      if (next !== null) ms = Math.max(0, Math.min(ms, next - Date.now()));
    } catch {
      // The poll interval is the fallback.
    }
    if (ms > 0) await this.wait(ms);
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => {
      this.inFlight.delete(p);
      this.wake();
    });
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

  /** Renders, signs and POSTs one delivery. A delivery that cannot be rendered is a recorded failure. */
  private async send(c: ClaimedDelivery): Promise<SendResult> {
    const now = Date.now();
    let body: string;
    const headers: Record<string, string> = { 'user-agent': this.o.userAgent };
    try {
      const envelope = this.o.envelopes[c.subscription.dialect];
      if (!envelope) throw new Error(`no envelope for dialect ${c.subscription.dialect}`);
      const r = envelope.render(c.event, c.subscription, { secrets: this.secretsFor(c.subscription, now), nowMs: now, tenantNumber: c.tenantNumber });
      for (const [k, v] of Object.entries(c.subscription.headers)) headers[k.toLowerCase()] = v;
      Object.assign(headers, r.headers);
      body = r.body;
    } catch (err) {
      this.o.log.error({ err, delivery: c.delivery.id }, 'rendering a delivery failed');
      return { statusCode: null, retryAfter: undefined, responseBody: null, errorKind: 'internal', error: `rendering failed: ${(err as Error).message}`, startedAt: now, durationMs: 0 };
    }
    return this.o.sender.post(c.subscription.url, headers, body);
  }

  private async deliver(c: ClaimedDelivery): Promise<void> {
    const subId = c.subscription.id;
    const busy = this.perSubscription.get(subId) ?? 0;
    if (busy >= this.o.maxInFlightPerEndpoint) {
      // One slow endpoint must not take every slot: hand it back for a moment.
      await this.o.store.release(c, Date.now() + 200).catch((err) => this.o.log.error({ err }, 'releasing a delivery failed'));
      return;
    }
    this.perSubscription.set(subId, busy + 1);
    try {
      const res = await this.send(c);
      let outcome = decideOutcome(res, c.delivery.attempts + 1, this.o.retry, Date.now());
      const exhaustedStatus = this.o.envelopes[c.subscription.dialect]?.exhaustedStatus;
      // A dialect with its own out-of-service status uses it for 410 Gone too.
      if ((outcome.kind === 'failed' || outcome.kind === 'gone') && exhaustedStatus) outcome = { kind: 'failed', exhaustedStatus };
      const ok = await this.o.store.complete(c, {
        startedAt: res.startedAt, durationMs: res.durationMs, statusCode: res.statusCode,
        errorKind: res.errorKind, error: res.error, responseBody: res.responseBody, worker: this.o.worker,
      }, outcome);
      if (!ok) this.o.log.warn({ delivery: c.delivery.id }, 'lease lost before the outcome was recorded; another dispatcher owns the delivery');
    } catch (err) {
      // Cannot record the outcome: the lease will run out and the delivery will be sent again.
      this.o.log.error({ err, delivery: c.delivery.id }, 'recording a delivery outcome failed');
    } finally {
      const n = (this.perSubscription.get(subId) ?? 1) - 1;
      if (n <= 0) this.perSubscription.delete(subId);
      else this.perSubscription.set(subId, n);
    }
  }
}
