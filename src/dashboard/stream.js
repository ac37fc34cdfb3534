// The live feed of attempts. Read with fetch and a stream reader rather than EventSource,
// which cannot send an Authorization header and would need the token in the URL.

const FIRST_RETRY_MS = 1000;
const LONGEST_RETRY_MS = 30_000;
/** A connection that stayed up this long was healthy: the next failure starts the backoff over. */
const STABLE_MS = 10_000;

/**
 * Splits a server-sent event stream into messages. Holds the unfinished tail between
 * chunks; `onMessage(event, data)` gets each complete one. Comment lines (keep-alives)
 * and fields other than event and data are dropped.
 */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = '';
    this.event = '';
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    // A line ends at CRLF, LF or CR; a CR last in the buffer may be half of a CRLF.
    const re = /\r\n|\n|\r(?!$)/g;
    let from = 0;
    for (let m = re.exec(this.buffer); m; m = re.exec(this.buffer)) {
      this.line(this.buffer.slice(from, m.index));
      from = m.index + m[0].length;
    }
    this.buffer = this.buffer.slice(from);
  }

  line(line) {
    if (line === '') {
      if (this.data.length) this.onMessage(this.event || 'message', this.data.join('\n'));
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
  }
}

/**
 * Keeps a stream open and reconnects with backoff (1 s doubling to 30 s, with jitter).
 * `onState` gets 'connecting' | 'live' | 'reconnecting' | 'closed'; `onOpen(n)` the
 * number of the connection just made (after the first, the caller catches up on what it
 * missed); a 401 ends it through `onUnauthorized`.
 */
export function openStream(path, token, { onAttempt, onState = () => {}, onOpen = () => {}, onUnauthorized = () => {} }) {
  const stop = new AbortController();
  let delay = FIRST_RETRY_MS;
  let connections = 0;
  let tries = 0;

  const run = async () => {
    while (!stop.signal.aborted) {
      onState(tries++ === 0 ? 'connecting' : 'reconnecting');
      const openedAt = Date.now();
      try {
        const res = await fetch(path, {
          headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
          cache: 'no-store', credentials: 'omit', signal: stop.signal,
        });
        if (res.status === 401) {
          onState('closed');
          onUnauthorized();
          return;
        }
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
        connections++;
        onState('live');
        onOpen(connections);
        const parser = new SseParser((event, data) => {
          if (event !== 'attempt') return;
          let a;
          try { a = JSON.parse(data); } catch { return; }
          if (a && typeof a === 'object') onAttempt(a);
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
      } catch {
        if (stop.signal.aborted) break;
      }
      if (stop.signal.aborted) break;
      if (Date.now() - openedAt > STABLE_MS) delay = FIRST_RETRY_MS;
      onState('reconnecting');
      const wait = delay * (0.8 + Math.random() * 0.4);
      delay = Math.min(delay * 2, LONGEST_RETRY_MS);
      await new Promise((ok) => {
        const t = setTimeout(ok, wait);
        stop.signal.addEventListener('abort', () => { clearTimeout(t); ok(); }, { once: true });
      });
    }
    onState('closed');
  };
  run();
  return { close: () => stop.abort() };
}
