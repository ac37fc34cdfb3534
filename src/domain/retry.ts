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

/** How long the schedule lasts, jitter aside: the time a delivery that fails every attempt takes to run out. */
export function scheduleSpanMs(policy: RetryPolicy): number {
  return Math.round(policy.scheduleSeconds.reduce((a, b) => a + b, 0) * 1000);
}

/**
 * How long a receiver asked Herald to wait, bounded by `maxRetryAfterSeconds`: only a 429
 * or a 503 with a Retry-After that parses asks; null otherwise.
 */
export function retryAfterMs(policy: RetryPolicy, statusCode: number | null, header: string | string[] | undefined, now: number): number | null {
  if (statusCode !== 429 && statusCode !== 503) return null;
  const s = parseRetryAfter(header, now);
  return s === null ? null : boundedRetryAfterMs(policy, s);
}

/** A receiver's Retry-After in seconds as the wait Herald keeps: 0 to `maxRetryAfterSeconds`, in ms. */
function boundedRetryAfterMs(policy: RetryPolicy, seconds: number): number {
  return Math.round(Math.min(Math.max(seconds, 0), policy.maxRetryAfterSeconds) * 1000);
}

/**
 * Whether an answer asking to wait (`retryAfterMs`) is free: it does not use up a retry
 * while the delivery is younger than the schedule's span, so a receiver that answers 429
 * for a while gets its delivery when it is ready, and one that answers 429 for ever still
 * sees the delivery fail about when the schedule would have ended.
 */
export function throttleIsFree(policy: RetryPolicy, createdAt: number, now: number): boolean {
  return now - createdAt < scheduleSpanMs(policy);
}

/**
 * Retries a delivery has used up, the attempt just made included: every attempt but the
 * free ones (`throttled`), while it is younger than the schedule's span; after that every
 * attempt counts, the free ones too, so the delivery ends as the schedule would have.
 */
export function retriesUsed(policy: RetryPolicy, attemptsMade: number, throttled: number, createdAt: number, now: number): number {
  return throttleIsFree(policy, createdAt, now) ? attemptsMade - throttled : attemptsMade;
}

/**
 * Delay before the next attempt, or null when the attempts are used up.
 * `attemptsMade` counts the attempt that just failed (those that used up a retry, see retriesUsed).
 */
export function nextRetryDelayMs(policy: RetryPolicy, attemptsMade: number, retryAfterSeconds: number | null, random = Math.random): number | null {
  if (attemptsMade > policy.scheduleSeconds.length) return null;
  if (retryAfterSeconds !== null) return boundedRetryAfterMs(policy, retryAfterSeconds);
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
