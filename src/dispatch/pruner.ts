import type { Logger } from 'pino';
import { cutoffs, idFloor } from '../domain/retention.ts';
import type { Db } from '../store/db.ts';
import { pruneDeliveriesBatch, pruneEventsBatch, pruneRecoveriesBatch, sqliteFreePages, type BatchResult, type BatchScope } from '../store/queries/retention.ts';

export interface PrunerOptions {
  db: Db;
  log: Logger;
  /** Finished deliveries older than this go, with their attempts; events follow, never before the events API's window. */
  retentionMs: number;
  intervalMs: number;
  batch: number;
  pauseMs: number;
  /** The clock the cut-offs are taken from. */
  now?: () => number;
  /** Told of each batch and how long its transaction took (the benchmark's figures). */
  onBatch?: (what: Pruned, r: BatchResult, ms: number) => void;
}

type Pruned = 'deliveries' | 'events' | 'recoveries';

export interface PassResult {
  deliveries: number;
  attempts: number;
  events: number;
  /** Bulk recovery jobs finished before the deliveries' cut-off. */
  recoveries: number;
  batches: number;
  /** PostgreSQL: another process was pruning, so this one stepped aside. */
  skipped: boolean;
  ms: number;
}

/**
 * Prunes old records in the background: a pass every interval, in small transactions with a
 * pause between them, so the dispatcher and the API get the store between any two. Deliveries
 * go first (with their attempts), then the events they leave without deliveries, then the
 * records of bulk recovery jobs that finished as long ago.
 */
export class Pruner {
  private readonly o: PrunerOptions;
  private timer: NodeJS.Timeout | null = null;
  private pausing: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  private stopped = false;
  private current: Promise<PassResult> | null = null;
  private readonly now: () => number;

  constructor(o: PrunerOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
  }

  /** Runs a first pass soon after start, then one every interval; nothing when retention is off. */
  start(): void {
    if (this.o.retentionMs <= 0 || this.stopped) return;
    this.schedule(Math.min(this.o.intervalMs, 1000));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.runPass().catch((err: unknown) => this.o.log.warn({ err }, 'pruning old records failed; trying again at the next interval'))
        .finally(() => this.schedule(this.o.intervalMs));
    }, ms);
    this.timer.unref();
  }

  /** One whole pass; a pass already running is joined rather than doubled. */
  runPass(): Promise<PassResult> {
    this.current ??= this.pass().finally(() => { this.current = null; });
    return this.current;
  }

  private async pass(): Promise<PassResult> {
    const started = performance.now();
    const out: PassResult = { deliveries: 0, attempts: 0, events: 0, recoveries: 0, batches: 0, skipped: false, ms: 0 };
    const { deliveriesBefore, eventsBefore } = cutoffs(this.now(), this.o.retentionMs);
    const steps: [(db: Db, s: BatchScope) => Promise<BatchResult>, number, Pruned][] = [
      [pruneDeliveriesBatch, deliveriesBefore, 'deliveries'],
      [pruneEventsBatch, eventsBefore, 'events'],
      [pruneRecoveriesBatch, deliveriesBefore, 'recoveries'],
    ];
    for (const [batch, cutoff, what] of steps) {
      let after = '';
      while (!this.stopped) {
        const t0 = performance.now();
        const r = await batch(this.o.db, { after, below: idFloor(cutoff), cutoff, now: this.now(), limit: this.o.batch });
        this.o.onBatch?.(what, r, performance.now() - t0);
        if (r.busy) {
          out.skipped = true;
          break;
        }
        out.batches++;
        out[what] += r.deleted;
        out.attempts += r.attempts;
        after = r.last;
        if (r.scanned < this.o.batch) break;
        await this.pause();
      }
      if (out.skipped) break;
    }
    out.ms = Math.round(performance.now() - started);
    if (out.deliveries || out.events || out.recoveries) {
      const free = await sqliteFreePages(this.o.db);
      this.o.log.info({ ...out, ...(free ? { sqlitePages: free.pages, sqliteFreePages: free.free } : {}) }, 'pruned old records');
    } else if (out.skipped) {
      this.o.log.debug('another process is pruning; this one steps aside until the next interval');
    }
    return out;
  }

  private pause(): Promise<void> {
    if (this.o.pauseMs <= 0) return new Promise((r) => setImmediate(r));
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pausing = null; resolve(); }, this.o.pauseMs);
      this.pausing = { timer, resolve };
    });
  }

  /** Stops scheduling and lets the batch in progress finish (it is one short transaction). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pausing) {
      clearTimeout(this.pausing.timer);
      this.pausing.resolve();
      this.pausing = null;
    }
    await this.current?.catch(() => undefined);
  }
}
