import { isIP } from 'node:net';
import { Pool } from 'undici';
import type { ErrorKind } from '../domain/states.ts';
import type { AddressGuard } from './addressGuard.ts';

export interface SendResult {
  statusCode: number | null;
  /** Seconds from a Retry-After header, as given (unparsed). */
  retryAfter: string | undefined;
  responseBody: string | null;
  errorKind: ErrorKind | null;
  error: string | null;
  startedAt: number;
  durationMs: number;
}

const KEEP_BYTES = 1024;
const READ_LIMIT = 64 * 1024;

function classify(err: unknown): { kind: ErrorKind; message: string } {
  const e = err as { code?: string; name?: string; message?: string; cause?: unknown };
  const code = e.code ?? (e.cause as { code?: string } | undefined)?.code ?? '';
  const message = e.message || String(err);
  if (code === 'EHERALDREFUSED') return { kind: 'refused_address', message };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || /TIMEOUT/.test(code)) return { kind: 'timeout', message: 'the receiver did not answer in time' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL') return { kind: 'dns', message };
  if (/^ERR_TLS|CERT|SSL|DEPTH_ZERO/.test(code)) return { kind: 'tls', message };
  return { kind: 'connection', message: code ? `${code}: ${message}` : message };
}

/** What the dispatcher and the dialects send through: in this thread or in a sender thread. */
export interface Poster {
  post(url: string, headers: Record<string, string>, body: string): Promise<SendResult>;
  close(): Promise<void>;
}

/**
 * POSTs deliveries through one keep-alive undici Pool per origin. Redirects are not
 * followed. The answer's headers must come within the timeout, no gap in its body may exceed
 * it, and the whole attempt must end within twice the timeout.
 */
export class Sender implements Poster {
  private readonly pools = new Map<string, Pool>();
  private readonly guard: AddressGuard;
  private readonly timeoutMs: number;
  private readonly connectionsPerOrigin: number;

  constructor(guard: AddressGuard, timeoutMs: number, connectionsPerOrigin: number) {
    this.guard = guard;
    this.timeoutMs = timeoutMs;
    this.connectionsPerOrigin = connectionsPerOrigin;
  }

  private pool(origin: string): Pool {
    let p = this.pools.get(origin);
    if (!p) {
      p = new Pool(origin, {
        connections: this.connectionsPerOrigin,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        connect: { timeout: this.timeoutMs, lookup: this.guard.lookup } as never,
      });
      this.pools.set(origin, p);
    }
    return p;
  }

  async post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const startedAt = Date.now();
    const t0 = performance.now();
    const done = (r: Omit<SendResult, 'startedAt' | 'durationMs'>): SendResult => ({ ...r, startedAt, durationMs: Math.round(performance.now() - t0) });
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return done({ statusCode: null, retryAfter: undefined, responseBody: null, errorKind: 'connection', error: 'invalid URL' });
    }
    // A literal address never reaches the lookup, so it is checked here.
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const r = this.guard.refusal(host);
      if (r) return done({ statusCode: null, retryAfter: undefined, responseBody: null, errorKind: 'refused_address', error: r });
    }
    try {
      const res = await this.pool(u.origin).request({
        method: 'POST',
        path: u.pathname + u.search,
        headers,
        body,
        // undici's timers bound each wait, not the whole: an answer trickled a byte at a time never
        // trips them. The attempt as a whole gets twice the timeout, the bound the lease is sized by.
        signal: AbortSignal.timeout(2 * this.timeoutMs),
      });
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let read = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        read += chunk.length;
        if (keptBytes < KEEP_BYTES) {
          kept.push(chunk);
          keptBytes += chunk.length;
        }
        if (read > READ_LIMIT) break;
      }
      const text = Buffer.concat(kept).subarray(0, KEEP_BYTES).toString('utf8');
      const ra = res.headers['retry-after'];
      return done({
        statusCode: res.statusCode,
        retryAfter: Array.isArray(ra) ? ra[0] : ra,
        responseBody: text,
        errorKind: res.statusCode >= 200 && res.statusCode < 300 ? null : 'http_status',
        error: null,
      });
    } catch (err) {
      const c = classify(err);
      return done({ statusCode: null, retryAfter: undefined, responseBody: null, errorKind: c.kind, error: c.message.slice(0, 500) });
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }
}
