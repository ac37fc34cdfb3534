import { Worker } from 'node:worker_threads';
import type { Cidr } from './addressGuard.ts';
import type { Poster, SendResult } from './sender.ts';

/** What the sender thread is started with. */
export interface SenderThreadOptions {
  allowPrivateNetworks: Cidr[];
  /** HERALD_DNS_SERVERS, so the thread resolves names as the main thread's checks do. */
  dnsServers?: string[];
  requestTimeoutMs: number;
  connectionsPerOrigin: number;
}

/** One request to the thread: [sequence number, url, headers, body]. */
export type PostMessage = [number, string, Record<string, string>, string];
/** One answer from the thread: [sequence number, result]. */
export type ResultMessage = [number, SendResult];
/** What the thread says besides answers. */
export type ThreadNotice = 'ready' | 'closed';

/** Pauses before starting a thread again after one died: doubling from the first, up to the last. */
const RESTART_PAUSE_MS = { first: 100, max: 30_000 };
/** How long the first thread may take to start. */
const READY_TIMEOUT_MS = 30_000;
/** A thread that ran this long before it died was healthy: the next restart pause starts over. */
const HEALTHY_MS = 60_000;

/**
 * Sends through a Sender in a worker thread, so that HTTP work (undici, the sockets, reading
 * answers) runs on another core than the store and the API. Requests made in one turn of
 * the event loop cross in one message, and so do the answers.
 *
 * A thread that dies fails what it held (those attempts are recorded and retried on the
 * usual schedule: some may have reached their receivers) and is started again after a
 * pause that doubles while threads keep dying young. Requests made meanwhile wait for the
 * new thread; none is failed for want of one.
 */
export class ThreadedSender implements Poster {
  private readonly o: SenderThreadOptions;
  private readonly onError: (err: Error) => void;
  private worker: Worker | null = null;
  private startedAt = 0;
  private pause = RESTART_PAUSE_MS.first;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Requests sent to the current thread, by sequence number. */
  private readonly pending = new Map<number, (r: SendResult) => void>();
  /** Requests not yet sent to a thread. */
  private outbox: { msg: PostMessage; resolve: (r: SendResult) => void }[] = [];
  private flushQueued = false;
  private seq = 0;
  private closing: Promise<void> | null = null;
  /** Settles when the first thread has started, or has failed to. */
  readonly ready: Promise<void>;
  /** Threads started to replace one that died (the metrics read it). */
  restarts = 0;

  constructor(o: SenderThreadOptions, onError: (err: Error) => void = () => undefined) {
    this.o = o;
    this.onError = onError;
    this.ready = new Promise<void>((resolve, reject) => {
      const w = this.start();
      const settle = (err: Error | null) => {
        clearTimeout(timer);
        w.off('message', onMessage);
        w.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      const onMessage = (m: unknown) => { if (m === 'ready') settle(null); };
      const onExit = (code: number) => settle(new Error(`the sender thread exited with code ${code} before it was ready`));
      const timer = setTimeout(() => settle(new Error(`the sender thread was not ready within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
      w.on('message', onMessage);
      w.once('exit', onExit);
    });
    // A caller that never awaits `ready` hears of a failure through onError.
    this.ready.catch(() => undefined);
  }

  private start(): Worker {
    // The old generation is not capped: the thread holds up to one body per request in flight.
    const w = new Worker(new URL('./senderWorker.ts', import.meta.url), {
      workerData: this.o, execArgv: threadExecArgv(), resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    this.worker = w;
    this.startedAt = Date.now();
    w.on('message', (m: ResultMessage[] | ThreadNotice) => {
      if (typeof m === 'string') return;
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
      for (const resolve of this.pending.values()) resolve(internalFailure('the sender thread stopped'));
      this.pending.clear();
      if (this.closing) return;
      if (Date.now() - this.startedAt >= HEALTHY_MS) this.pause = RESTART_PAUSE_MS.first;
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.closing) return;
        this.restarts++;
        this.start();
        this.flush();
      }, this.pause);
      this.pause = Math.min(this.pause * 2, RESTART_PAUSE_MS.max);
    });
    return w;
  }

  post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    if (this.closing) return Promise.resolve(internalFailure('the sender is closed'));
    return new Promise((resolve) => {
      this.outbox.push({ msg: [this.seq++, url, headers, body], resolve });
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(this.flush);
      }
    });
  }

  /** Sends what waits to the thread, if there is one; otherwise it waits for the next. */
  private flush = (): void => {
    this.flushQueued = false;
    const w = this.worker;
    if (!w || this.outbox.length === 0) return;
    const batch = this.outbox;
    this.outbox = [];
    for (const { msg, resolve } of batch) this.pending.set(msg[0], resolve);
    w.postMessage(batch.map((b) => b.msg));
  };

  /** Lets what was sent finish (each attempt is bounded by the request timeout), then stops the thread. */
  close(): Promise<void> {
    this.closing ??= this.shut();
    return this.closing;
  }

  private async shut(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.flush();
    for (const { resolve } of this.outbox) resolve(internalFailure('the sender is closed'));
    this.outbox = [];
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

/**
 * A thread inherits the process's node flags, except when they describe the process's own
 * entry point (`-e CODE`, `--input-type`), which a thread started from a file refuses: then
 * it gets the rest of them.
 */
function threadExecArgv(): string[] | undefined {
  const argv = process.execArgv;
  /** Flags whose value is the next argument. */
  const withCode = (a: string) => ['-e', '--eval', '-p', '--print'].includes(a);
  const own = (a: string) => withCode(a) || /^--(input-type|eval|print)=/.test(a);
  if (!argv.some(own)) return undefined;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (withCode(a)) i++;
    else if (!own(a)) out.push(a);
  }
  return out;
}

function internalFailure(error: string): SendResult {
  return { statusCode: null, retryAfter: undefined, responseBody: null, errorKind: 'internal', error, startedAt: Date.now(), durationMs: 0 };
}
