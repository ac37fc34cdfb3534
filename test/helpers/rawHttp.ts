// HTTP/1.1 over a bare socket, so a test can send exactly the bytes it means: invalid UTF-8,
// any content type or none, a body of any size, a path no client library would build.
import { connect } from 'node:net';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  /** The body as text; for an event stream, only what came before the socket was closed. */
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  json: unknown;
}

export interface RawRequest {
  method: string;
  /** Sent as given: the caller encodes it. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', i);
    if (eol < 0) break;
    const n = parseInt(b.subarray(i, eol).toString('latin1'), 16);
    if (!Number.isFinite(n) || n === 0) break;
    out.push(b.subarray(eol + 2, eol + 2 + n));
    i = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}

/** One request on its own connection; an event stream is cut off once its headers are in. */
export function rawRequest(base: string, r: RawRequest, timeoutMs = 10_000): Promise<RawAnswer> {
  const u = new URL(base);
  const body = r.body === undefined ? undefined : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body, 'utf8');
  const head: string[] = [`${r.method} ${r.path} HTTP/1.1`, `host: ${u.host}`, 'connection: close'];
  for (const [k, v] of Object.entries(r.headers ?? {})) head.push(`${k}: ${v}`);
  if (body !== undefined) head.push(`content-length: ${body.length}`);
  const bytes = Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), body ?? Buffer.alloc(0)]);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no complete answer to ${r.method} ${r.path.slice(0, 100)} in ${timeoutMs} ms`)), timeoutMs);
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) return reject(err);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no HTTP answer to ${r.method} ${r.path.slice(0, 100)}: ${JSON.stringify(all.toString('latin1').slice(0, 200))}`));
      const lines = all.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1]);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
      }
      let rest: Buffer = all.subarray(end + 4);
      if (headers['transfer-encoding']?.includes('chunked')) rest = dechunk(rest);
      const text = rest.toString('utf8');
      let json: unknown;
      try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
      resolve({ status, headers, text, json });
    };
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      // A live stream never ends by itself: its status and headers are the answer.
      const seen = Buffer.concat(chunks);
      const end = seen.indexOf('\r\n\r\n');
      if (end >= 0 && /content-type:\s*text\/event-stream/i.test(seen.subarray(0, end).toString('latin1'))) finish();
    });
    sock.on('end', () => finish());
    sock.on('close', () => finish());
    // The server may answer (413, say) and close before the whole body is written.
    sock.on('error', (err) => (chunks.length ? finish() : finish(err)));
    sock.write(bytes);
  });
}
