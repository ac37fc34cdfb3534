import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The exact body bytes. */
  raw: Buffer;
  body: string;
  at: number;
}

export type Responder = (r: Received, n: number) => { status: number; headers?: Record<string, string>; body?: string; delayMs?: number } | Promise<{ status: number; headers?: Record<string, string>; body?: string; delayMs?: number }>;

/** A real HTTP receiver on loopback that records every request it gets. */
export class Receiver {
  readonly received: Received[] = [];
  private readonly server: Server;
  private waiters: { n: number; resolve: () => void }[] = [];
  respond: Responder = () => ({ status: 200, body: 'ok' });
  url = '';

  constructor(respond?: Responder) {
    if (respond) this.respond = respond;
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const raw = Buffer.concat(chunks);
        const r: Received = { method: req.method!, path: req.url!, headers: req.headers, raw, body: raw.toString('utf8'), at: Date.now() };
        this.received.push(r);
        const out = await this.respond(r, this.received.length);
        if (out.delayMs) await new Promise((ok) => setTimeout(ok, out.delayMs));
        res.writeHead(out.status, { 'content-type': 'text/plain', ...(out.headers ?? {}) });
        res.end(out.body ?? '');
        this.waiters = this.waiters.filter((w) => {
          if (this.received.length >= w.n) { w.resolve(); return false; }
          return true;
        });
      });
    });
  }

  /** Listens on loopback; another 127.x address or ::1, or a given port, when a test needs one. */
  async start(host = '127.0.0.1', port = 0): Promise<this> {
    await new Promise<void>((ok) => this.server.listen(port, host, ok));
    const where = host.includes(':') ? `[${host}]` : host;
    this.url = `http://${where}:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Resolves once `n` requests have been answered; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.received.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`receiver got ${this.received.length} of ${n} requests in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ n, resolve: () => { clearTimeout(t); resolve(); } });
    });
  }

  json(i: number): any {
    return JSON.parse(this.received[i]!.body);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it is true, failing after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}
