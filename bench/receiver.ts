// The benchmark's receiver, in its own process: answers every POST (paths under /slow/
// after a delay), counts deliveries per path and remembers when each event id arrived.
// The harness talks to it over IPC.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const slowMs = Number(process.env.BENCH_SLOW_MS ?? 5000);
const keepTimes = process.env.BENCH_KEEP_TIMES === '1';
let byPath = new Map<string, number>();
let total = 0;
let times = new Map<string, number>();

const server = createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    const at = performance.timeOrigin + performance.now();
    const path = req.url ?? '/';
    total++;
    byPath.set(path, (byPath.get(path) ?? 0) + 1);
    if (keepTimes) {
      const id = req.headers['webhook-id'];
      if (typeof id === 'string' && !times.has(id)) times.set(id, at);
    }
    if (path.startsWith('/slow/')) setTimeout(() => res.writeHead(204).end(), slowMs);
    else res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 60_000;

process.on('message', (m: { cmd: string; prefix?: string }) => {
  if (m.cmd === 'stats') {
    let matching = 0;
    if (m.prefix !== undefined) for (const [p, n] of byPath) if (p.startsWith(m.prefix)) matching += n;
    process.send!({ total, matching });
  } else if (m.cmd === 'times') {
    process.send!({ times: [...times] });
  } else if (m.cmd === 'reset') {
    byPath = new Map();
    total = 0;
    times = new Map();
    process.send!({ ok: true });
  }
});

server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
