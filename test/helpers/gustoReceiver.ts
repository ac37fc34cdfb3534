import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export const rackAvailable = spawnSync('ruby', ['-e', 'require "rack"; require "rack/handler/webrick"']).status === 0;

/** The seed's Rack snippet running in Ruby as a real receiver on loopback. */
export class RubyReceiver {
  readonly lines: string[] = [];
  url = '';
  private child!: ChildProcess;

  static async start(): Promise<RubyReceiver> {
    const r = new RubyReceiver();
    r.child = spawn('ruby', [new URL('../fixtures/gusto_receiver.rb', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'pipe'] });
    const rl = createInterface({ input: r.child.stdout! });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the Ruby receiver did not start')), 15_000);
      rl.on('line', (line) => {
        r.lines.push(line);
        const m = /^listening (\d+)$/.exec(line);
        if (m) {
          r.url = `http://127.0.0.1:${m[1]}/`;
          clearTimeout(t);
          resolve();
        }
      });
    });
    return r;
  }

  /** What the snippet said about each event, by event uuid. */
  verdicts(): Map<string, string> {
    const out = new Map<string, string>();
    this.lines.forEach((l, i) => {
      const m = /^event (.+)$/.exec(l);
      if (m && this.lines[i + 1]) out.set(m[1]!, this.lines[i + 1]!);
    });
    return out;
  }

  tokens(): string[] {
    return this.lines.filter((l) => l.startsWith('token ')).map((l) => l.slice(6));
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}
