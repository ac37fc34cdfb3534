// A circuit breaker per subscription, in the dispatcher's process: after enough failed
// attempts in a row the subscription's deliveries are no longer claimed, but for one probe
// at a time once per cool-down (doubling up to a cap); a 2xx closes it. A receiver that
// answers Retry-After is held back the same way for as long as it asked. It knows nothing of
// dialects or of the store: the dispatcher asks it what each subscription may take.

export interface BreakerPolicy {
  /** Failed attempts in a row that open the breaker; 0: never (Retry-After still holds). */
  failures: number;
  /** The first cool-down; each failed probe doubles it. */
  firstCoolMs: number;
  /** The longest cool-down. */
  maxCoolMs: number;
}

interface State {
  /** Failed attempts in a row, as this process saw them (or as the store's run said). */
  failures: number;
  /** Null: closed. Otherwise no claim before this time, and then one probe at a time. */
  openUntil: number | null;
  coolMs: number;
  /** The delivery being sent as the probe, if one is. */
  probe: string | null;
}

/** What an attempt's answer tells the breaker. */
export type Answer = { ok: true } | { ok: false; retryAfterMs: number | null };

/** Closed subscriptions kept at most; past that the closed ones are forgotten. */
const KEEP = 20_000;

export class Breakers {
  private readonly p: BreakerPolicy;
  private readonly subs = new Map<string, State>();

  constructor(p: BreakerPolicy) {
    this.p = { ...p, firstCoolMs: Math.min(p.firstCoolMs, p.maxCoolMs) };
  }

  /**
   * Subscriptions whose claims are limited now: 0 for those that may take none, 1 for those
   * whose probe may go. Closed subscriptions are not listed.
   */
  room(now: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const [id, s] of this.subs) {
      if (s.openUntil === null) continue;
      out.set(id, s.probe === null && now >= s.openUntil ? 1 : 0);
    }
    return out;
  }

  /** When the earliest open subscription may send its probe; null when none waits for one. */
  nextProbeAt(): number | null {
    let at: number | null = null;
    for (const s of this.subs.values()) {
      if (s.openUntil !== null && s.probe === null && (at === null || s.openUntil < at)) at = s.openUntil;
    }
    return at;
  }

  /** Whether the subscription's breaker is open (held back, probing or waiting to). */
  isOpen(id: string): boolean {
    return (this.subs.get(id)?.openUntil ?? null) !== null;
  }

  /**
   * Whether a claimed delivery may be sent now. A closed subscription sends everything; an
   * open one only its probe, which this claim becomes if none is out and the cool-down is
   * over. `failureStreak` (the store's run of failures, from the claim) opens the breaker of
   * a subscription this process knows nothing of yet, as after a restart or when another
   * process saw the failures: its first claim is then a probe.
   */
  mayStart(id: string, deliveryId: string, now: number, failureStreak?: number): boolean {
    let s = this.subs.get(id);
    if (!s && this.p.failures > 0 && (failureStreak ?? 0) >= this.p.failures) {
      s = { failures: failureStreak!, openUntil: now, coolMs: this.p.firstCoolMs, probe: null };
      this.keep(id, s);
    }
    if (!s || s.openUntil === null) return true;
    if (s.probe === deliveryId) return true;
    if (s.probe !== null || now < s.openUntil) return false;
    s.probe = deliveryId;
    return true;
  }

  /** A delivery went back unsent: if it was the probe, another may go. */
  released(id: string, deliveryId: string): void {
    const s = this.subs.get(id);
    if (s?.probe === deliveryId) s.probe = null;
  }

  /**
   * An attempt to subscription `id` was answered (or failed to be). Answers 'held' when the
   * subscription is now held back (opened, or a probe failed, or a Retry-After came), 'closed'
   * when this answer closed an open breaker, and null otherwise.
   */
  answered(id: string, deliveryId: string, a: Answer, now: number): 'held' | 'closed' | null {
    let s = this.subs.get(id);
    if (a.ok) {
      // A 2xx from any attempt closes it: the receiver is back.
      const wasOpen = s?.openUntil !== null && s?.openUntil !== undefined;
      if (s && (s.failures > 0 || wasOpen)) {
        s.failures = 0;
        s.openUntil = null;
        s.coolMs = this.p.firstCoolMs;
        s.probe = null;
      }
      return wasOpen ? 'closed' : null;
    }
    if (!s) {
      s = { failures: 0, openUntil: null, coolMs: this.p.firstCoolMs, probe: null };
      this.keep(id, s);
    }
    const wasProbe = s.probe === deliveryId;
    if (wasProbe) s.probe = null;
    if (a.retryAfterMs !== null) {
      // The receiver said when: no sooner than that, then one probe, whatever the run.
      s.openUntil = Math.max(s.openUntil ?? 0, now + a.retryAfterMs);
      return 'held';
    }
    s.failures++;
    if (wasProbe) {
      s.coolMs = Math.min(s.coolMs * 2, this.p.maxCoolMs);
      s.openUntil = Math.max(s.openUntil ?? 0, now + s.coolMs);
      return 'held';
    }
    if (s.openUntil === null && this.p.failures > 0 && s.failures >= this.p.failures) {
      s.coolMs = this.p.firstCoolMs;
      s.openUntil = now + s.coolMs;
      return 'held';
    }
    return null;
  }

  private keep(id: string, s: State): void {
    if (this.subs.size >= KEEP) {
      for (const [k, v] of this.subs) if (v.openUntil === null) this.subs.delete(k);
    }
    this.subs.set(id, s);
  }
}
