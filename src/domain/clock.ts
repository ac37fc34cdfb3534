/**
 * Herald's idea of "now", in epoch milliseconds, for everything that decides WHEN a
 * delivery is due: publish and retry times, lease ends, the claim's due check, the
 * signing timestamp and the attempt's recorded start. One clock per Herald, passed in,
 * so that a test can step a running Herald's time by minutes without touching the
 * machine's clock. Durations are measured with performance.now() and never use it.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The system clock moved by an offset that a test steps forward and back. */
export class SteppedClock implements Clock {
  offsetMs: number;

  constructor(offsetMs = 0) {
    this.offsetMs = offsetMs;
  }

  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Moves the clock by `ms` (negative: back) at once, as an NTP step would. */
  step(ms: number): void {
    this.offsetMs += ms;
  }
}
