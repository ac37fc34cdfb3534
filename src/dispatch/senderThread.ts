import { Worker } from 'node:worker_threads';
import type { Cidr } from './addressGuard.ts';
import type { Poster, SendResult } from './sender.ts';

/** What the sender thread is started with. */
export interface SenderThreadOptions {
  allowPrivateNetworks: Cidr[];
  requestTimeoutMs: number;
  connectionsPerOrigin: number;
}

/** One request to the thread: [sequence number, url, headers, body]. */
export type PostMessage = [number, string, Record<string, string>, string];
/** One answer from the thread: [sequence number, result]. */
export type ResultMessage = [number, SendResult];

/** A thread that dies sooner than this after it started is restarted only after this long. */
const RESTART_PAUSE_MS = 1000;

/**
 * Sends through a Sender in a worker thread, so that HTTP work (undici, the sockets, reading
 * answers) runs on another core than the store and the API. Requests made in one turn of
 * the event loop cross in one message, and so do the answers.
 *
 * A thread that dies fails what it held (those attempts are recorded and retried on the
 * usual schedule) and is started again.
 */
export class ThreadedSender implements Poster {
  private readonly o: SenderThreadOptions;
  private worker: Worker | null = null;
  private startedAt = 0;
  private readonly pending = new Map<number, (r: SendResult) => void>();
  private outbox: PostMessage[] = [];
  private seq = 0;
  private closing = false;
  private readonly onError: (err: Error) => void;

  constructor(o: SenderThreadOptions, onError: (err: Error) => void = () => undefined) {
    this.o = o;
    this.onError = onError;
    this.start();
  }

  private start(): void {
    const w = new Worker(new URL('./senderWorker.ts', import.meta.url), {
      workerData: this.o,
      // The thread holds pools, sockets and the first bytes of each answer: a small heap.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 48 },
    });
    this.worker = w;
    this.startedAt = Date.now();
    w.on('message', (m: ResultMessage[] | 'closed') => {
      if (m === 'closed') return;
      for (const [id, r] of m) {
        const resolve = this.pending.get(id);
        this.pending.delete(id);
        resolve?.(r);
      }
    });
    w.on('error', (err) => this.onError(err));
    w.on('exit', () => {
      if (this.worker !== w) return;
      this.worker = null;
      this.failPending('the sender thread stopped');
      if (this.closing) return;
      const wait = Date.now() - this.startedAt < RESTART_PAUSE_MS ? RESTART_PAUSE_MS : 0;
      setTimeout(() => { if (!this.closing && !this.worker) this.start(); }, wait).unref();
    });
    // The dispatcher's own work keeps the process alive; an idle thread should not.
    w.unref();
  }

  post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    if (this.closing || !this.worker) return Promise.resolve(internalFailure(this.closing ? 'the sender is closed' : 'the sender thread is restarting'));
    return new Promise((resolve) => {
      const id = this.seq++;
      this.pending.set(id, resolve);
      if (this.outbox.push([id, url, headers, body]) === 1) queueMicrotask(this.flush);
    });
  }

  private flush = (): void => {
    const batch = this.outbox;
    this.outbox = [];
    if (batch.length === 0) return;
    // With no thread (it died this turn) the requests fail below, with what it held.
    if (this.worker) this.worker.postMessage(batch);
    else for (const [id] of batch) this.fail(id, 'the sender thread stopped');
  };

  private fail(id: number, why: string): void {
    const resolve = this.pending.get(id);
    this.pending.delete(id);
    resolve?.(internalFailure(why));
  }

  private failPending(why: string): void {
    for (const id of [...this.pending.keys()]) this.fail(id, why);
  }

  /** Lets what was sent finish (each attempt is bounded by the request timeout), then stops the thread. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.flush();
    const w = this.worker;
    if (!w) return;
    await new Promise<void>((resolve) => {
      const onMessage = (m: unknown) => { if (m === 'closed') done(); };
      const done = () => { w.off('message', onMessage); w.off('exit', done); resolve(); };
      w.on('message', onMessage);
      w.once('exit', done);
      w.postMessage('close');
    });
    await w.terminate();
  }
}

function internalFailure(error: string): SendResult {
  return { statusCode: null, retryAfter: undefined, responseBody: null, errorKind: 'internal', error, startedAt: Date.now(), durationMs: 0 };
}
