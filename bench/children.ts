// The processes a stand-alone bench script starts: the bench receiver (receiver.ts) in a
// child of its own, and a Herald serving on a free port, ready once /readyz answers 200.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../test/helpers/freePort.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** bench/receiver.ts in a child process; `count` asks how many requests it took under a path prefix. */
export class BenchReceiver {
  child!: ChildProcess;
  url = '';
  private replies: ((m: any) => void)[] = [];
  static async start(): Promise<BenchReceiver> {
    const r = new BenchReceiver();
    r.child = fork(new URL('./receiver.ts', import.meta.url).pathname, [], { env: { ...process.env, BENCH_KEEP_TIMES: '0' } });
    const first = await new Promise<any>((res) => r.child.once('message', res));
    r.url = `http://127.0.0.1:${first.port}`;
    r.child.on('message', (m) => r.replies.shift()?.(m));
    return r;
  }
  count(prefix: string): Promise<number> {
    return new Promise((res) => { this.replies.push((m) => res(m.matching)); this.child.send({ cmd: 'stats', prefix }); });
  }
}

/** `herald serve` with only the given environment (and PATH), on a free port. */
export class BenchHerald {
  child!: ChildProcess;
  url = '';
  static async start(env: Record<string, string>, nodeArgs: string[] = []): Promise<BenchHerald> {
    const h = new BenchHerald();
    const port = await freePort();
    h.child = spawn(process.execPath, [...nodeArgs, 'src/cli.ts', 'serve'], {
      env: { PATH: process.env.PATH, ...env, HERALD_PORT: String(port) },
      stdio: ['ignore', 2, 'inherit'],
    });
    h.url = `http://127.0.0.1:${port}`;
    const t0 = Date.now();
    while ((await fetch(`${h.url}/readyz`).then((r) => r.status, () => 0)) !== 200) {
      if (h.child.exitCode !== null) throw new Error(`Herald exited with ${h.child.exitCode} before it was ready`);
      if (Date.now() - t0 > 60_000) throw new Error('Herald did not get ready in 60 s');
      await sleep(20);
    }
    return h;
  }
  /** A POST with a bearer token; anything but 2xx throws with the answer. */
  async call(path: string, token: string, body: unknown): Promise<any> {
    const res = await fetch(this.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  }
  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await new Promise((r) => (this.child.exitCode !== null ? r(null) : this.child.once('exit', r)));
  }
}
