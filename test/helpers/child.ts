import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Env } from '../../src/config.ts';

/** Herald as a separate process (`herald serve`), for kill -9 and SIGTERM tests. */
export class HeraldProcess {
  readonly env: Env;
  child!: ChildProcess;
  url = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private resolveExit!: (v: { code: number | null; signal: NodeJS.Signals | null }) => void;
  readonly lines: string[] = [];

  constructor(env: Env) {
    this.env = env;
    this.exited = new Promise((r) => { this.resolveExit = r; });
  }

  /**
   * Starts the process and resolves with it once it logs that it is ready. `script`: another
   * entry than `herald serve` (test/helpers/steppedServe.ts: on a clock the test steps).
   */
  static async start(env: Env, script: string[] = ['src/cli.ts', 'serve']): Promise<HeraldProcess> {
    const p = new HeraldProcess(env);
    p.child = spawn(process.execPath, script, {
      env: { PATH: process.env.PATH, ...env, HERALD_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    p.child.on('exit', (code, signal) => p.resolveExit({ code, signal }));
    const rl = createInterface({ input: p.child.stdout! });
    const errs: string[] = [];
    p.child.stderr!.on('data', (d: Buffer) => errs.push(d.toString()));
    await new Promise<void>((resolve, reject) => {
      // A start that times out is killed, or it would live on, orphaned, once the test is gone.
      // 60 s: on a loaded two-core machine a child's start has taken 15 s.
      const t = setTimeout(() => { p.child.kill('SIGKILL'); reject(new Error(`Herald did not start in 60 s: ${errs.join('')}`)); }, 60_000);
      rl.on('line', (line) => {
        p.lines.push(line);
        if (line.includes('"Herald is ready"')) {
          p.url = JSON.parse(line).url;
          clearTimeout(t);
          resolve();
        }
      });
      void p.exited.then(({ code }) => { clearTimeout(t); reject(new Error(`Herald exited with ${code}: ${errs.join('')}`)); });
    });
    return p;
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}
