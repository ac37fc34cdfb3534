import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { ListenRequest } from '../dispatch/listenHub.ts';
import { request as httpsRequest } from 'node:https';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { CliError, clientOptions, httpUrl, refusal, shortTime, tenantToken, type ClientOptions } from './common.ts';

const SESSION_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const FILTER_RE = /^(\*|[A-Za-z][A-Za-z0-9_]{0,63})\.(\*|[A-Za-z][A-Za-z0-9_]{0,63})$/;
/** The first 1 KB of the local answer goes back to Herald, which keeps as much. */
const KEEP_BYTES = 1024;
/** Read no more of a local answer than this. */
const READ_LIMIT = 64 * 1024;
/** Reconnecting waits this long at first, doubling up to the second. */
const RECONNECT_MS = { first: 250, max: 10_000 };

interface ListenOptions extends ClientOptions {
  forwardTo: string;
  events?: string[];
  session: string;
}

/** One delivery as Herald pushes it down the stream. */
type Pushed = ListenRequest;

interface Ready {
  session: string;
  subscription_id: string;
  tenant: { id: string; name: string };
  secret: string | null;
  filters: string[];
  timeout_ms: number;
  keep_alive_ms: number;
}

interface LocalResult {
  status_code: number | null;
  duration_ms: number;
  body: string | null;
  error: string | null;
  error_kind: 'connection' | 'timeout' | 'dns' | 'tls' | null;
  retry_after: string | null;
}

function events(v: string, prev: string[] = []): string[] {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const f of list) if (!FILTER_RE.test(f)) throw new InvalidArgumentError(`"${f}" must be Entity.Event (either side may be *), e.g. Employee.*`);
  return [...prev, ...list];
}

function session(v: string): string {
  if (!SESSION_RE.test(v)) throw new InvalidArgumentError('must be 1 to 64 letters, digits, dots, dashes or underscores');
  return v;
}

/** POSTs one delivery to the local receiver with exactly Herald's headers and body. */
function forward(target: URL, p: Pushed, timeoutMs: number): Promise<LocalResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const body = Buffer.from(p.body, 'utf8');
  const headers = { ...p.headers, 'content-length': String(body.length) };
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: LocalResult) => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    const fail = (kind: LocalResult['error_kind'], error: string) => done({ status_code: null, duration_ms: ms(), body: null, error, error_kind: kind, retry_after: null });
    const req = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, { method: 'POST', headers, timeout: timeoutMs }, (res: IncomingMessage) => {
      const kept: Buffer[] = [];
      let read = 0;
      res.on('data', (c: Buffer) => {
        if (read < KEEP_BYTES) kept.push(c);
        read += c.length;
        if (read > READ_LIMIT) res.destroy();
      });
      const finish = () => {
        const ra = res.headers['retry-after'];
        done({
          status_code: res.statusCode ?? null, duration_ms: ms(), error: null, error_kind: null,
          body: Buffer.concat(kept).subarray(0, KEEP_BYTES).toString('utf8'), retry_after: (Array.isArray(ra) ? ra[0] : ra) ?? null,
        });
      };
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
    });
    req.on('timeout', () => {
      req.destroy();
      fail('timeout', `the local receiver did not answer within ${timeoutMs} ms`);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      const kind = err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' ? 'dns' : /CERT|SSL|TLS/.test(err.code ?? '') ? 'tls' : 'connection';
      fail(kind, `${err.code ? `${err.code}: ` : ''}${err.message}`.slice(0, 500));
    });
    req.end(body);
  });
}

/** Splits an event stream into its events; comments (keep-alives) only show the stream is alive. */
async function* sseEvents(body: ReadableStream<Uint8Array>, alive: () => void): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buf = '';
  let event = 'message';
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    alive();
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (data.length) yield { event, data: data.join('\n') };
        event = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        continue;
      } else {
        const i = line.indexOf(':');
        const name = i < 0 ? line : line.slice(0, i);
        const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (name === 'event') event = value;
        else if (name === 'data') data.push(value);
      }
    }
  }
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/** `herald listen`: a tenant's deliveries, forwarded to a local URL over an outbound stream. */
export function registerListen(program: Command): void {
  clientOptions(program.command('listen'), 'tenant')
    .description('forward a tenant\'s deliveries to a local URL, over an outbound stream (no public URL needed)')
    .addOption(new Option('--forward-to <url>', 'the local receiver, e.g. http://localhost:3000/hook').makeOptionMandatory().argParser((v) => {
      try { return httpUrl(v); } catch { throw new InvalidArgumentError('must be an http(s) URL, e.g. http://localhost:3000/hook'); }
    }))
    .addOption(new Option('--events <types>', 'event types to receive, comma-separated (Employee.*,Payroll.paid); default: every event').argParser(events))
    .addOption(new Option('--session <name>', 'the session: deliveries made while it is not connected wait for it under this name').default('default').argParser(session))
    .addHelpText('after', [
      '',
      'Herald keeps one subscription per tenant and session. While `herald listen` is not',
      'connected, the session\'s deliveries are held, and they arrive when it connects again',
      'with the same --session. Each delivery is forwarded with Herald\'s exact headers and',
      'body, signed the Standard Webhooks way with the secret printed at start.',
      '',
      'Example:',
      '  herald listen --token $HERALD_TOKEN --forward-to http://localhost:3000/hook --events "Employee.*"',
    ].join('\n'))
    .action(async (o: ListenOptions) => listen(o));
}

async function listen(o: ListenOptions): Promise<void> {
  const token = tenantToken(o);
  const target = new URL(o.forwardTo);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const out = (line: string) => process.stdout.write(line + '\n');
  const note = (line: string): void => { if (!o.json) process.stderr.write(line + '\n'); };
  const query = new URLSearchParams({ session: o.session });
  if (o.events?.length) query.set('events', o.events.join(','));
  const streamUrl = `${o.url}/api/v1/listen?${query}`;
  const resultsUrl = `${o.url}/api/v1/listen/${encodeURIComponent(o.session)}/results`;
  let pause = RECONNECT_MS.first;
  let connectedOnce = false;
  const inFlight = new Set<Promise<void>>();

  const report = async (p: Pushed, r: LocalResult) => {
    try {
      const res = await fetch(resultsUrl, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ request_id: p.request_id, ...r }),
      });
      if (res.status === 404) note(`  (Herald had stopped waiting for delivery ${p.delivery_id ?? p.request_id}: it records a timeout and retries)`);
      else if (!res.ok) note(`  (Herald refused the result: ${res.status} ${await res.text()})`);
    } catch (err) {
      note(`  (could not report the result to Herald: ${(err as Error).message}; it records a timeout and retries)`);
    }
  };

  const handle = async (p: Pushed, timeoutMs: number) => {
    const r = await forward(target, p, timeoutMs);
    const time = new Date();
    if (o.json) {
      out(JSON.stringify({ type: 'delivery', time: time.toISOString(), delivery_id: p.delivery_id, event_id: p.event_id, event_type: p.event_type, status_code: r.status_code, duration_ms: r.duration_ms, error: r.error }));
    } else {
      const result = r.status_code !== null ? `${r.status_code}` : `${r.error_kind}: ${r.error}`;
      out(`${shortTime(time.getTime())}  ${(p.event_type ?? '?').padEnd(24)} ${p.event_id ?? '-'}  -> ${result}  ${r.duration_ms} ms`);
    }
    await report(p, r);
  };

  while (!stop.signal.aborted) {
    const conn = new AbortController();
    const abortConn = () => conn.abort();
    stop.signal.addEventListener('abort', abortConn, { once: true });
    let watchdog: NodeJS.Timeout | undefined;
    try {
      let res: Response;
      try {
        res = await fetch(streamUrl, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: conn.signal });
      } catch (err) {
        if (stop.signal.aborted) break;
        const cause = (err as { cause?: { code?: string } }).cause;
        note(`cannot reach Herald at ${o.url} (${cause?.code ?? (err as Error).message}); retrying in ${(pause / 1000).toFixed(1)} s`);
        await sleep(pause, stop.signal);
        pause = Math.min(pause * 2, RECONNECT_MS.max);
        continue;
      }
      if (!res.ok) {
        const text = await res.text();
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* text */ }
        // Herald refused this request (token, session, event types): trying again cannot help.
        if (res.status >= 400 && res.status < 500) throw refusal('GET', '/api/v1/listen', res.status, body);
        note(`Herald answered ${res.status}; retrying in ${(pause / 1000).toFixed(1)} s`);
        await sleep(pause, stop.signal);
        pause = Math.min(pause * 2, RECONNECT_MS.max);
        continue;
      }
      let ready: Ready | null = null;
      let idleMs = 45_000;
      const alive = () => {
        clearTimeout(watchdog);
        // Herald writes at least a keep-alive comment this often: silence means the connection is dead.
        watchdog = setTimeout(() => conn.abort(), idleMs);
      };
      for await (const ev of sseEvents(res.body!, alive)) {
        if (ev.event === 'ready') {
          ready = JSON.parse(ev.data) as Ready;
          idleMs = ready.keep_alive_ms * 3;
          alive();
          pause = RECONNECT_MS.first;
          if (o.json) {
            out(JSON.stringify({ type: 'ready', session: ready.session, tenant: ready.tenant, subscription_id: ready.subscription_id, secret: ready.secret, filters: ready.filters, forward_to: o.forwardTo }));
          } else if (!connectedOnce) {
            out(`Ready. Forwarding ${ready.tenant.name}'s deliveries (session ${ready.session}${ready.filters.length ? `, ${ready.filters.join(',')}` : ', every event'}) to ${o.forwardTo}`);
            out(`Signing secret (Standard Webhooks): ${ready.secret}`);
            out('Press Ctrl-C to stop; deliveries made meanwhile wait for this session.');
          } else {
            out(`Reconnected (session ${ready.session}).`);
          }
          connectedOnce = true;
        } else if (ev.event === 'closed' && (JSON.parse(ev.data) as { reason?: string }).reason === 'replaced') {
          // Taking the session back would only make the two connections take turns.
          throw new CliError(`another herald listen connected with session ${o.session} and took it over; give each its own --session to run both`, 1);
        } else if (ev.event === 'delivery' && ready) {
          // The local receiver gets a little less time than Herald waits, so its own timeout is what is recorded.
          const timeoutMs = Math.max(100, Math.min(ready.timeout_ms - 250, Math.floor(ready.timeout_ms * 0.9)));
          const job = handle(JSON.parse(ev.data) as Pushed, timeoutMs).catch((err) => note(`forwarding failed: ${(err as Error).message}`));
          inFlight.add(job);
          void job.finally(() => inFlight.delete(job));
        }
      }
      if (stop.signal.aborted) break;
      note(`the stream from Herald ended; reconnecting in ${(pause / 1000).toFixed(1)} s`);
    } catch (err) {
      if (err instanceof CliError) throw err;
      if (stop.signal.aborted) break;
      note(`lost the stream from Herald (${(err as Error).message}); reconnecting in ${(pause / 1000).toFixed(1)} s`);
    } finally {
      clearTimeout(watchdog);
      stop.signal.removeEventListener('abort', abortConn);
      conn.abort();
    }
    await sleep(pause, stop.signal);
    pause = Math.min(pause * 2, RECONNECT_MS.max);
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // Answers already in hand are reported before exiting; Herald records the rest as failed and retries them.
  await Promise.race([Promise.all(inFlight), new Promise((r) => setTimeout(r, 2000))]);
}
