/** Default: 16 retries after the first attempt, 5 s doubling, each capped at 10 h. */
export function defaultRetrySchedule(): number[] {
  const out: number[] = [];
  for (let i = 0; i < 16; i++) out.push(Math.min(5 * 2 ** i, 36_000));
  return out;
}

export function parseRetrySchedule(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new Error('HERALD_RETRY_SCHEDULE: give at least one delay in seconds');
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isFinite(n) || n < 0) throw new Error(`HERALD_RETRY_SCHEDULE: "${p}" is not a number of seconds`);
    return n;
  });
}

export interface RetryPolicy {
  scheduleSeconds: number[];
  /** 0.2 means each delay is drawn from [0.8, 1.2] times the scheduled one. */
  jitter: number;
  /** Upper bound for a receiver's Retry-After. */
  maxRetryAfterSeconds: number;
}

/**
 * Delay before the next attempt, or null when the attempts are used up.
 * `attemptsMade` counts the attempt that just failed.
 */
export function nextRetryDelayMs(policy: RetryPolicy, attemptsMade: number, retryAfterSeconds: number | null, random = Math.random): number | null {
  if (attemptsMade > policy.scheduleSeconds.length) return null;
  if (retryAfterSeconds !== null) {
    return Math.round(Math.min(Math.max(retryAfterSeconds, 0), policy.maxRetryAfterSeconds) * 1000);
  }
  const base = policy.scheduleSeconds[attemptsMade - 1]! * 1000;
  const factor = 1 + policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base * factor));
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  if (value === undefined) return null;
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return null;
  if (/^\d+$/.test(v)) return Number(v);
  // An HTTP date names a weekday or month; anything else ("-5", "1.5") is ignored.
  if (!/^[A-Za-z]{3}/.test(v)) return null;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, (at - now) / 1000);
}
