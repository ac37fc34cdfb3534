import type { Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import type { SqlStore } from '../store/sqlStore.ts';
import { recoveryStep, takeRecovery, type Recovery } from '../store/queries/recoveries.ts';

export interface RecoveryRunnerOptions {
  store: SqlStore;
  log: Logger;
  /** Deliveries re-queued per second by one job, at most. */
  ratePerSecond: number;
  /** How long a job stays with this process after its last step; then another may take it. */
  leaseMs: number;
  /** How often an idle runner looks for a job. */
  pollIntervalMs: number;
  /** Names this process as a job's owner. */
  worker: string;
  /** Tells this process's dispatcher that deliveries became due. */
  wake: () => void;
  now?: () => number;
}

/** Failed deliveries read per step, whether they match the filters or not: bounds how long one step holds the store. */
const WINDOW = 500;

/**
 * Runs bulk recovery jobs, one at a time per process and one process per job. The rate is
 * kept by steps: every `stepMs`, at most `rate * stepMs / 1000` deliveries are re-queued,
 * each due at once, so the dispatcher sends them at about that rate. A step that only
 * skipped over deliveries that do not match is followed at once by the next.
 */
export class RecoveryRunner {
  private readonly o: RecoveryRunnerOptions;
  private readonly owner: string;
  private readonly stepMs: number;
  private readonly budget: number;
  private running = false;
  private done: Promise<void> = Promise.resolve();
  private timer: { resolve: () => void; t: NodeJS.Timeout } | null = null;
  private readonly now: () => number;

  constructor(o: RecoveryRunnerOptions) {
    this.o = o;
    this.owner = `${o.worker}:${randomBytes(4).toString('hex')}`;
    this.now = o.now ?? Date.now;
    this.stepMs = Math.max(100, Math.ceil(1000 / o.ratePerSecond));
    this.budget = Math.max(1, Math.floor((o.ratePerSecond * this.stepMs) / 1000));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.done = this.loop();
  }

  /** A job was created: look now rather than at the next poll. */
  poke = (): void => {
    const w = this.timer;
    this.timer = null;
    if (w) { clearTimeout(w.t); w.resolve(); }
  };

  async stop(): Promise<void> {
    this.running = false;
    this.poke();
    await this.done;
  }

  private sleep(ms: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      this.timer = { resolve, t: setTimeout(() => { this.timer = null; resolve(); }, ms) };
    });
  }

  private async loop(): Promise<void> {
    // While the store is unreachable the runner waits longer each time (up to a minute) and
    // says so once, rather than a warning at every poll through an outage.
    let failing = 0;
    while (this.running) {
      let job: Recovery | null = null;
      try {
        job = await takeRecovery(this.o.store.db, this.owner, this.now(), this.o.leaseMs);
        if (failing > 0) this.o.log.info({ failures: failing }, 'looking for recovery jobs works again');
        failing = 0;
      } catch (err) {
        failing++;
        if (failing === 1) this.o.log.warn({ err }, 'looking for a recovery job failed; backing off until the store answers');
        else this.o.log.debug({ err, failures: failing }, 'looking for a recovery job failed again');
      }
      if (!job) {
        await this.sleep(failing > 0 ? Math.min(60_000, this.o.pollIntervalMs * 2 ** Math.min(failing, 10)) : this.o.pollIntervalMs);
        continue;
      }
      this.o.log.info({ recovery: job.id, total: job.total, done: job.done }, 'running a recovery job');
      await this.run(job.id);
    }
  }

  private async run(id: string): Promise<void> {
    while (this.running) {
      const started = this.now();
      let r;
      try {
        r = await recoveryStep(this.o.store, id, this.owner, started, { leaseMs: this.o.leaseMs, budget: this.budget, window: WINDOW });
      } catch (err) {
        // The job stays ours until its lease runs out; the step's transaction left nothing half done.
        this.o.log.warn({ err, recovery: id }, 'a recovery step failed; trying again');
        await this.sleep(Math.max(this.stepMs, 1000));
        continue;
      }
      if (r.requeued > 0) this.o.wake();
      if (!r.job) return;
      if (r.job.state !== 'running') {
        this.o.log.info({ recovery: id, done: r.job.done, skipped: r.job.skipped }, 'recovery job finished');
        return;
      }
      if (r.requeued > 0) await this.sleep(Math.max(0, this.stepMs - (this.now() - started)));
      else await new Promise((res) => setImmediate(res));
    }
  }
}
