// What the dispatcher tells the world about each attempt: one log line, and an optional
// observer (the metrics). Both see only dialect-blind facts: ids, status, timing, outcome.
import type { Logger } from 'pino';
import type { ClaimedDelivery, Outcome } from '../domain/model.ts';
import type { SendResult } from './sender.ts';

/**
 * What an attempt meant for its delivery: the outcome the dispatcher decided (before a
 * dialect turns a 410 into its own out-of-service status), whether it was recorded
 * (false: the lease was lost to another dispatcher; null: recording failed).
 */
export interface AttemptReport {
  claim: ClaimedDelivery;
  result: SendResult;
  outcome: Outcome['kind'];
  recorded: boolean | null;
}

/** Told of every attempt once it is recorded or has failed to be. Must not throw or block. */
export interface DeliveryObserver {
  attempt(r: AttemptReport): void;
}

/**
 * The one log line of an attempt. `info` whatever the receiver answered: a failing receiver
 * is the subscriber's trouble, not Herald's, and levels above info are kept for Herald's
 * own (a lost lease is `warn`, an outcome that could not be recorded is `error`). Never
 * the URL (it may carry a credential in its query), a header, the body or the answer.
 */
export function logAttempt(log: Logger, r: AttemptReport, err?: unknown): void {
  // The usual case costs nothing when the level hides it: no fields are gathered.
  if (r.recorded === true && !log.isLevelEnabled('info')) return;
  const { claim: c, result: res } = r;
  const fields = {
    delivery_id: c.delivery.id, event_id: c.event.id, subscription_id: c.subscription.id, tenant_id: c.delivery.tenantId,
    event_type: `${c.event.entity}.${c.event.event}`, attempt: c.delivery.attempts + 1, status_code: res.statusCode,
    error_kind: res.errorKind, duration_ms: res.durationMs, outcome: r.outcome,
  };
  if (r.recorded === true) log.info(fields, 'delivery attempt');
  else if (r.recorded === false) log.warn({ ...fields, recorded: false }, 'delivery attempt; the lease was lost before its outcome was recorded, another dispatcher owns the delivery');
  else log.error({ ...fields, recorded: false, err }, 'delivery attempt; recording its outcome failed, the lease will run out and it will be sent again');
}
