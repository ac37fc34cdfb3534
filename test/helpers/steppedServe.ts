// `herald serve` on a clock that a test steps from outside the process: the offset in ms is
// read from the file HERALD_TEST_CLOCK_FILE names (missing or empty: 0), so that a child
// Herald, or several sharing one file, can have its time moved forward and back. Test-only:
// Herald itself has no such setting. Start it with HeraldProcess.start(env, STEPPED_SERVE).
import { readFileSync } from 'node:fs';
import { loadConfig } from '../../src/config.ts';
import type { Clock } from '../../src/domain/clock.ts';
import { Herald, makeLogger } from '../../src/herald.ts';

/** The system clock plus the offset in a file, read again every `everyMs`. */
export class FileClock implements Clock {
  private offsetMs = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly path: string;

  constructor(path: string, everyMs = 20) {
    this.path = path;
    this.read();
    this.timer = setInterval(() => this.read(), everyMs);
    this.timer.unref();
  }

  private read(): void {
    try {
      const text = readFileSync(this.path, 'utf8').trim();
      const n = text === '' ? 0 : Number(text);
      if (Number.isFinite(n)) this.offsetMs = n;
    } catch {
      this.offsetMs = 0;
    }
  }

  now(): number {
    return Date.now() + this.offsetMs;
  }
}

export const STEPPED_SERVE = ['test/helpers/steppedServe.ts'];

if (import.meta.main) {
  const file = process.env.HERALD_TEST_CLOCK_FILE;
  if (!file) throw new Error('HERALD_TEST_CLOCK_FILE must name the clock offset file');
  const c = loadConfig();
  const log = makeLogger(c.logLevel);
  const herald = new Herald(c, log, { clock: new FileClock(file) });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    herald.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await herald.start();
}
