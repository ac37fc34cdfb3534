import { randomUUID } from 'node:crypto';
import type { ErrorKind } from '../domain/states.ts';
import type { Poster, SendResult } from './sender.ts';

/**
 * `herald listen` subscriptions carry a URL of this scheme instead of an http(s) one: a
 * delivery to it goes down the connected CLI's stream, and the CLI posts the local
 * receiver's answer back. The URL names the tenant and the session, so the URL alone
 * (all a Poster is given) says which stream a delivery belongs to.
 */
export const LISTEN_SCHEME = 'herald-listen:';

/** Session names: what a developer types on the command line, safe inside a URL and a path. */
export const SESSION_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function listenUrl(tenantId: string, session: string): string {
  return `${LISTEN_SCHEME}//${tenantId}/${session}`;
}

export const isListenUrl = (url: string): boolean => url.startsWith(LISTEN_SCHEME);

/** The first 1 KB of a receiver's answer is kept, as the HTTP sender keeps. */
const KEEP_BYTES = 1024;

/** One delivery as it goes down the stream: the request without its URL. */
export interface ListenRequest {
  request_id: string;
  delivery_id: string | null;
  event_id: string | null;
  event_type: string | null;
  headers: Record<string, string>;
  body: string;
}

/** What the CLI reports for one request: the local receiver's answer, or why there was none. */
export interface ListenResult {
  statusCode: number | null;
  durationMs: number;
  body: string | null;
  error: string | null;
  errorKind: ErrorKind | null;
  retryAfter: string | undefined;
}

/** One connected stream, as the HTTP layer gives it to the hub. */
export interface ListenStream {
  /** The session's subscription. */
  readonly subscriptionId: string;
  push(req: ListenRequest): void;
  /** Ends the stream; `replaced` tells the CLI that a newer connection of its session took over. */
  close(reason: 'replaced' | 'stopping'): void;
}

interface Pending {
  url: string;
  stream: ListenStream;
  startedAt: number;
  t0: number;
  timer: NodeJS.Timeout;
  resolve: (r: SendResult) => void;
}

const failure = (startedAt: number, t0: number, errorKind: ErrorKind, error: string): SendResult => ({
  statusCode: null, retryAfter: undefined, responseBody: null, errorKind, error, startedAt, durationMs: Math.round(performance.now() - t0),
});

/**
 * Holds this process's `herald listen` streams and the requests waiting for their answers.
 * A delivery to a session with no stream here fails at once (error kind `connection`) and
 * is retried on the usual schedule; one with no answer within the request timeout fails as
 * `timeout`. Either way the dispatcher records it like any attempt.
 */
export class ListenHub {
  private readonly timeoutMs: number;
  private readonly deliveryIdOf: (subscriptionId: string, eventId: string) => Promise<string | null>;
  private readonly streams = new Map<string, ListenStream>();
  private readonly pending = new Map<string, Pending>();

  /**
   * `deliveryIdOf` finds the delivery an attempt belongs to, for the CLI's line: a Poster is
   * given only the URL, headers and body.
   */
  constructor(timeoutMs: number, deliveryIdOf: (subscriptionId: string, eventId: string) => Promise<string | null> = async () => null) {
    this.timeoutMs = timeoutMs;
    this.deliveryIdOf = deliveryIdOf;
  }

  /** Makes `stream` the one for `url`; a stream already there for the same session is closed. */
  attach(url: string, stream: ListenStream): void {
    const old = this.streams.get(url);
    this.streams.set(url, stream);
    if (old && old !== stream) {
      this.failPending(old, 'the herald listen session was taken over by a newer connection');
      old.close('replaced');
    }
  }

  /** Forgets `stream`; answers whether it was the session's current one (so the session has none now). */
  detach(url: string, stream: ListenStream): boolean {
    this.failPending(stream, 'the herald listen stream closed before the receiver answered');
    if (this.streams.get(url) !== stream) return false;
    this.streams.delete(url);
    return true;
  }

  has(url: string): boolean {
    return this.streams.has(url);
  }

  get connected(): number {
    return this.streams.size;
  }

  /** Ends every stream (the process is stopping); each is detached as its connection closes. */
  closeAll(): void {
    for (const s of [...this.streams.values()]) s.close('stopping');
  }

  async post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const startedAt = Date.now();
    const t0 = performance.now();
    const stream = this.streams.get(url);
    if (!stream) return failure(startedAt, t0, 'connection', 'no herald listen stream for this session is connected to this Herald process');
    const eventId = headers['webhook-id'] ?? null;
    let eventType: string | null = null;
    try {
      const t = (JSON.parse(body) as { type?: unknown }).type;
      if (typeof t === 'string') eventType = t;
    } catch {
      // Not the native envelope: the line shows no type.
    }
    const deliveryId = eventId ? await this.deliveryIdOf(stream.subscriptionId, eventId).catch(() => null) : null;
    // The stream may have gone while the delivery was looked up.
    if (this.streams.get(url) !== stream) return failure(startedAt, t0, 'connection', 'the herald listen stream closed before the delivery was sent');
    const requestId = randomUUID();
    return new Promise<SendResult>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        resolve(failure(startedAt, t0, 'timeout', 'herald listen did not report the receiver\'s answer in time'));
      }, this.timeoutMs);
      this.pending.set(requestId, { url, stream, startedAt, t0, timer, resolve });
      stream.push({ request_id: requestId, delivery_id: deliveryId, event_id: eventId, event_type: eventType, headers, body });
    });
  }

  /**
   * The CLI's report for one request of session `url`. False when no such request waits
   * (unknown, another session's, already answered or timed out).
   */
  report(url: string, requestId: string, r: ListenResult): boolean {
    const p = this.pending.get(requestId);
    if (!p || p.url !== url) return false;
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    // The CLI measures the local answer; it cannot have taken longer than Herald waited.
    const waited = Math.round(performance.now() - p.t0);
    const code = r.statusCode;
    const body = r.body === null ? null : Buffer.from(r.body, 'utf8').subarray(0, KEEP_BYTES).toString('utf8');
    p.resolve({
      statusCode: code,
      retryAfter: r.retryAfter,
      responseBody: body,
      errorKind: code === null ? (r.errorKind ?? 'connection') : code >= 200 && code < 300 ? null : 'http_status',
      error: code === null ? (r.error ?? 'the local receiver did not answer') : null,
      startedAt: p.startedAt,
      durationMs: Math.max(0, Math.min(Math.round(r.durationMs), waited)),
    });
    return true;
  }

  private failPending(stream: ListenStream, why: string): void {
    for (const [id, p] of this.pending) {
      if (p.stream !== stream) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.resolve(failure(p.startedAt, p.t0, 'connection', why));
    }
  }
}

/** The process's Poster with `herald-listen:` URLs sent through the hub instead of HTTP. */
export class ListenPoster implements Poster {
  private readonly inner: Poster;
  private readonly hub: ListenHub;

  constructor(inner: Poster, hub: ListenHub) {
    this.inner = inner;
    this.hub = hub;
  }

  post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    return isListenUrl(url) ? this.hub.post(url, headers, body) : this.inner.post(url, headers, body);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
