import type { Dialect } from './states.ts';

/**
 * How a dialect shows a subscription that Herald took out of service (410 Gone, or failing
 * for too long): the status its API reports, and whether events published meanwhile make
 * deliveries to hold (so that re-enabling sends them) or none (the dialect's subscribers
 * catch up from an events API instead, as Gusto's do). Either way the subscription is
 * paused, so what was waiting is held, never cancelled.
 */
export interface OutOfService {
  status: string;
  stopsNewDeliveries: boolean;
}

export const OUT_OF_SERVICE: Record<Dialect, OutOfService> = {
  native: { status: 'disabled', stopsNewDeliveries: false },
  paycor: { status: 'disabled', stopsNewDeliveries: false },
  gusto: { status: 'unreachable', stopsNewDeliveries: true },
};

/** The notice a tenant's other subscriptions get when one of them is taken out of service. */
export const DISABLED_NOTICE = 'subscription_disabled';
