// A PostgreSQL server of the test's own, on a free loopback port, that the test may stop,
// crash and restart. The machine's shared server (5432) is never touched: other suites use it.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { freePort } from './freePort.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The directory holding initdb and pg_ctl, or null when no PostgreSQL is installed. */
export function pgBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0]!, 'bin') : null;
}

/** Why a private server cannot be run here, or null when it can. */
export function privatePgUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root (a private PostgreSQL is run as the postgres user through runuser)';
  if (!pgBinDir()) return 'initdb not found under /usr/lib/postgresql/*/bin';
  return null;
}


export class PrivatePg {
  readonly dir: string;
  readonly port: number;
  private readonly bin: string;
  private running = false;
  /** More `-c name=value` settings for the server, after (and so over) the defaults below. */
  private readonly settings: string;

  private constructor(dir: string, port: number, bin: string, settings: Record<string, string | number>) {
    this.dir = dir;
    this.port = port;
    this.bin = bin;
    this.settings = Object.entries(settings).map(([k, v]) => ` -c ${k}=${v}`).join('');
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** A fresh cluster, started; `settings` override the defaults of start() (the bench passes fsync=on). */
  static async create(settings: Record<string, string | number> = {}): Promise<PrivatePg> {
    const bin = pgBinDir();
    if (!bin) throw new Error('initdb not found');
    const dir = mkdtempSync(join(tmpdir(), 'herald-pg-'));
    chownSync(dir, uidOf('postgres'), gidOf('postgres'));
    const pg = new PrivatePg(dir, await freePort(), bin, settings);
    pg.as('initdb', ['-D', pg.data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    pg.start();
    return pg;
  }

  private get data(): string {
    return join(this.dir, 'data');
  }

  private as(tool: string, args: string[]): string {
    return execFileSync('runuser', ['-u', 'postgres', '--', join(this.bin, tool), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  }

  /** Starts the server and waits until it accepts connections. fsync off: the tests crash the server, never the machine. */
  start(): void {
    this.as('pg_ctl', ['-D', this.data, '-l', join(this.dir, 'log'), '-w', '-t', '30',
      '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50${this.settings}`, 'start']);
    this.running = true;
  }

  /** `immediate` is a crash: no checkpoint, backends killed, recovery at the next start. */
  stop(mode: 'immediate' | 'fast' = 'fast'): void {
    this.as('pg_ctl', ['-D', this.data, '-m', mode, '-w', '-t', '30', 'stop']);
    this.running = false;
  }

  restart(mode: 'immediate' | 'fast' = 'fast'): void {
    this.stop(mode);
    this.start();
  }

  /** Stops the server if it runs and removes its files. */
  destroy(): void {
    try {
      if (this.running) this.stop('immediate');
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

function uidOf(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}

function gidOf(user: string): number {
  return Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
}
