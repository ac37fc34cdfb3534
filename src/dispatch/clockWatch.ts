// A dispatcher's watch on its own clock. Leases are wall-clock times in the store, written
// by every process on its own clock. When this process's clock jumps forward (an NTP step,
// a VM resumed, an operator's `date -s`), the leases other processes hold look run out to
// it while they are still sending; taking them over would send the same delivery twice at
// once. The monotonic clock (performance.now()) does not jump, so the watch compares the two:
// what the wall clock gained on the monotonic one within the last lease is how far it
// jumped, and a lease is taken over only once it has run out on the clock as it was before.
// After one lease of monotonic time, every lease written before the jump has run out (the
// attempt bound is below the lease), and the jumped clock is taken at its word.
import type { Logger } from 'pino';
import type { Clock } from '../domain/clock.ts';

/**
 * Gains up to this much within a lease are not a jump: NTP slews a clock by at most 0.5 ms
 * a second (30 ms over the default lease), and Date.now() is whole milliseconds.
 */
export const JUMP_TOLERANCE_MS = 50;

export interface ClockReading {
  /** The clock now. */
  now: number;
  /**
   * Leases that ran out at or before this time may be taken over: `now`, or, within a lease
   * after a forward jump, now less the jump (the clock as it was, moved on by monotonic time).
   */
  leaseCutoff: number;
  /** How far the clock jumped forward within the last lease; 0 when it did not. */
  jumpMs: number;
}

export class ClockWatch {
  private readonly clock: Clock;
  private readonly windowMs: number;
  private readonly mono: () => number;
  private readonly log: Logger | undefined;
  /** Clock less monotonic time, the lowest seen in each slice of the window, oldest first. */
  private readonly samples: { at: number; offset: number }[] = [];
  private readonly sliceMs: number;
  private lastJumpMs = 0;

  /** `windowMs`: the lease. `mono`: the monotonic clock (a test's own, to move it by hand). */
  constructor(clock: Clock, windowMs: number, o: { log?: Logger; mono?: () => number } = {}) {
    this.clock = clock;
    this.windowMs = windowMs;
    this.mono = o.mono ?? (() => performance.now());
    this.log = o.log;
    this.sliceMs = windowMs / 32;
    this.read();
  }

  read(): ClockReading {
    // The two clocks are read between two monotonic readings: a pause in between (a garbage
    // collection, a preempted process) would otherwise look like the clock jumping forward.
    // Tried a few times; the closest pair is kept.
    let at = 0, now = 0, spread = Infinity;
    for (let i = 0; i < 3 && spread > 2; i++) {
      const before = this.mono();
      const wall = this.clock.now();
      const after = this.mono();
      if (after - before < spread) { spread = after - before; at = after; now = wall; }
    }
    const offset = now - at;
    const s = this.samples;
    // Keep the newest sample from before the window too: the clock may have jumped any time after it.
    while (s.length > 1 && s[1]!.at <= at - this.windowMs) s.shift();
    const last = s[s.length - 1];
    if (last && at - last.at < this.sliceMs) last.offset = Math.min(last.offset, offset);
    else s.push({ at, offset });
    let lowest = offset;
    for (const x of s) if (x.offset < lowest) lowest = x.offset;
    const gain = offset - lowest;
    const jumpMs = gain > JUMP_TOLERANCE_MS ? gain : 0;
    if (jumpMs > this.lastJumpMs + JUMP_TOLERANCE_MS) {
      this.log?.warn({ jump_ms: Math.round(jumpMs) }, 'the clock jumped forward by %d ms; for one lease, other processes\' leases are taken over only once run out on the clock as it was', Math.round(jumpMs));
    }
    this.lastJumpMs = jumpMs;
    // Whole milliseconds, as the store keeps times; rounded down, to the side of leaving a lease alone.
    return { now, leaseCutoff: jumpMs > 0 ? Math.floor(now - jumpMs) : now, jumpMs };
  }
}
