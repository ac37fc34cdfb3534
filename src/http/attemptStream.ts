import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { DashboardStore, StreamedAttempt } from '../store/queries/dashboard.ts';
import { nativeError } from './errors.ts';

/** How often the store is read while someone watches, when nothing wakes the poller sooner. */
const POLL_MS = 500;
/** The soonest a wake-up (this process recording attempts) reads again after the last read. */
const MIN_GAP_MS = 50;
/** Attempts read at once; a full read is followed by another at once. */
const BATCH = 500;
/**
 * On PostgreSQL, attempt ids are handed out when the row is inserted but become visible
 * when their transaction commits, which may be after a later id's: an id skipped over is
 * looked for again for this long before it is taken for a rollback.
 */
const GAP_MS = 10_000;
const MAX_GAPS = 2000;
/** A watcher that reads slower than attempts come is dropped once this much waits for it. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

interface Watcher {
  /** Null: the operator, who sees every tenant's attempts. */
  tenantId: string | null;
  reply: FastifyReply;
  /** When the credential it was opened with runs out (a portal link), epoch ms; null: never. */
  untilMs: number | null;
}

/** The JSON of one `attempt` event, as the dashboard contract names its fields. */
export function attemptEvent(a: StreamedAttempt) {
  return {
    id: a.id, delivery_id: a.deliveryId, subscription_id: a.subscriptionId, tenant_id: a.tenantId, event_id: a.eventId,
    event_type: a.eventType, attempt: a.attempt, status_code: a.statusCode, error_kind: a.errorKind, duration_ms: a.durationMs,
    started_at: new Date(a.startedAt).toISOString(), delivery_status: a.deliveryStatus,
  };
}

/**
 * Server-Sent Events of new attempts, for the dashboard and the portal. One poller per
 * process reads the attempts after the last one it saw, and only while someone watches, so
 * it sees those that every Herald process on the same database records; this process's own
 * recordings wake it early. Each attempt goes to the operator's streams and to those of its
 * tenant.
 */
export class AttemptStream {
  private readonly store: DashboardStore;
  private readonly log: FastifyBaseLogger;
  private readonly maxConnections: number;
  private readonly keepAliveMs: number;
  private readonly watchers = new Set<Watcher>();
  private lastSeen = 0;
  /** Ids skipped over, and when: they may still commit. */
  private readonly gaps = new Map<number, number>();
  private starting: Promise<void> | null = null;
  private running = false;
  private reading = false;
  private again = false;
  private lastRead = 0;
  private timer: NodeJS.Timeout | null = null;
  private keepAlive: NodeJS.Timeout | null = null;
  private unhook: (() => void) | null = null;
  private closed = false;

  constructor(store: DashboardStore, log: FastifyBaseLogger, o: { maxConnections: number; keepAliveMs: number }) {
    this.store = store;
    this.log = log;
    this.maxConnections = o.maxConnections;
    this.keepAliveMs = o.keepAliveMs;
  }

  get connections(): number {
    return this.watchers.size;
  }

  /**
   * Answers the request with the stream; it runs until the client goes, Herald closes, or
   * `untilMs` passes (an expired portal link must not keep watching).
   */
  async open(req: FastifyRequest, reply: FastifyReply, tenantId: string | null, untilMs: number | null = null): Promise<void> {
    if (this.closed || this.watchers.size >= this.maxConnections) {
      return reply.status(503).header('retry-after', '5').send(nativeError({ status: 503, code: 'unavailable', message: 'too many live streams are open; try again shortly' }, req));
    }
    const w: Watcher = { tenantId, reply, untilMs };
    this.watchers.add(w);
    try {
      await this.start();
    } catch (err) {
      this.watchers.delete(w);
      throw err;
    }
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // Proxies that buffer answers (nginx) would hold the events back.
      'x-accel-buffering': 'no',
    });
    // A first line at once, so the client's fetch resolves before any attempt happens.
    reply.raw.write(': connected\n\n');
    const drop = () => this.drop(w);
    req.raw.on('close', drop);
    reply.raw.on('close', drop);
    reply.raw.on('error', drop);
    // The client may have gone while the poller started.
    if (req.raw.destroyed || reply.raw.destroyed) drop();
  }

  /** Reads now rather than at the next poll (this process just recorded attempts). */
  wake = (): void => {
    if (!this.running) return;
    if (this.reading) { this.again = true; return; }
    const wait = Math.max(0, this.lastRead + MIN_GAP_MS - Date.now());
    this.schedule(wait);
  };

  /** Ends every stream and stops polling (Herald is closing). */
  close(): void {
    this.closed = true;
    for (const w of [...this.watchers]) {
      w.reply.raw.end();
      this.drop(w);
    }
    this.stop();
  }

  private async start(): Promise<void> {
    if (this.running) return;
    this.starting ??= (async () => {
      try {
        this.lastSeen = await this.store.lastAttemptId();
        this.gaps.clear();
        this.running = true;
        this.unhook = this.store.onRecorded(this.wake);
        this.keepAlive = setInterval(() => this.broadcast(': keep-alive\n\n', null, true), this.keepAliveMs);
        this.schedule(POLL_MS);
      } finally {
        this.starting = null;
      }
    })();
    await this.starting;
  }

  private stop(): void {
    this.running = false;
    this.unhook?.();
    this.unhook = null;
    if (this.timer) clearTimeout(this.timer);
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.timer = null;
    this.keepAlive = null;
  }

  private drop(w: Watcher): void {
    if (!this.watchers.delete(w)) return;
    if (!w.reply.raw.destroyed) w.reply.raw.destroy();
    if (this.watchers.size === 0 && this.running) this.stop();
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; void this.read(); }, ms);
  }

  private async read(): Promise<void> {
    if (!this.running || this.reading) return;
    this.reading = true;
    this.again = false;
    this.lastRead = Date.now();
    let full = false;
    try {
      const rows = await this.store.attemptsAfter(this.lastSeen, [...this.gaps.keys()], BATCH);
      full = rows.length >= BATCH;
      const now = Date.now();
      for (const a of rows) {
        if (this.gaps.delete(a.id)) {
          this.emit(a);
          continue;
        }
        if (a.id <= this.lastSeen) continue;
        // Past a large jump the gaps are not worth tracking: those ids were rolled back, or far behind.
        if (a.id - this.lastSeen - 1 <= MAX_GAPS) for (let id = this.lastSeen + 1; id < a.id; id++) this.gaps.set(id, now);
        this.lastSeen = a.id;
        this.emit(a);
      }
      for (const [id, at] of this.gaps) if (now - at > GAP_MS || this.gaps.size > MAX_GAPS) this.gaps.delete(id);
    } catch (err) {
      this.log.warn({ err }, 'reading attempts for the live stream failed; trying again');
    } finally {
      this.reading = false;
    }
    if (this.running) this.schedule(full ? 0 : this.again ? Math.max(0, MIN_GAP_MS - (Date.now() - this.lastRead)) : POLL_MS);
  }

  private emit(a: StreamedAttempt): void {
    this.broadcast(`id: ${a.id}\nevent: attempt\ndata: ${JSON.stringify(attemptEvent(a))}\n\n`, a.tenantId, false);
  }

  private broadcast(chunk: string, tenantId: string | null, everyone: boolean): void {
    for (const w of [...this.watchers]) {
      if (!everyone && w.tenantId !== null && w.tenantId !== tenantId) continue;
      const raw = w.reply.raw;
      if (raw.destroyed || raw.writableEnded) { this.drop(w); continue; }
      // Checked before every write, keep-alives included, so it ends within one keep-alive of expiring.
      if (raw.writableLength > MAX_BUFFERED_BYTES || (w.untilMs !== null && Date.now() >= w.untilMs)) {
        raw.end();
        this.drop(w);
        continue;
      }
      raw.write(chunk);
    }
  }
}
