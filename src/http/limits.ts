// The limits an operator sets on what one request or one tenant may hold: filters and
// custom headers per subscription (a 422 naming the field; Paycor-style renders it as its
// 400), subscriptions per tenant (a 409: the request is fine, the tenant is full). The body
// size limit is Fastify's bodyLimit (a 413), set in app.ts from the same config.
import { ConflictError, UnprocessableError } from '../domain/errors.ts';
import { countLiveSubscriptions } from '../store/queries/limits.ts';
import type { Services } from './services.ts';

/** Refuses a list of filters (or event types) longer than HERALD_MAX_FILTERS_PER_SUBSCRIPTION. */
export function checkFilterCount(s: Services, list: unknown, field: string): void {
  const max = s.config.maxFiltersPerSubscription;
  if (Array.isArray(list) && list.length > max) throw new UnprocessableError(field, `must hold at most ${max} items (HERALD_MAX_FILTERS_PER_SUBSCRIPTION)`);
}

/** Refuses more custom headers than HERALD_MAX_HEADERS_PER_SUBSCRIPTION. */
export function checkHeaderCount(s: Services, map: unknown, field: string): void {
  const max = s.config.maxHeadersPerSubscription;
  if (map !== null && typeof map === 'object' && !Array.isArray(map) && Object.keys(map).length > max) {
    throw new UnprocessableError(field, `must hold at most ${max} headers (HERALD_MAX_HEADERS_PER_SUBSCRIPTION)`);
  }
}

// One creation at a time per tenant in this process, so that concurrent requests cannot
// all pass the count before any of them is written. Processes sharing a PostgreSQL store
// can still each let one through at the same moment: the limit can be passed by at most
// the number of processes less one.
const queues = new Map<string, Promise<unknown>>();

/**
 * Runs `create` if the tenant has room for one more subscription under
 * HERALD_MAX_SUBSCRIPTIONS_PER_TENANT; a 409 otherwise, with nothing written.
 */
export async function withSubscriptionRoom<T>(s: Services, tenantId: string, create: () => Promise<T>): Promise<T> {
  const prev = queues.get(tenantId) ?? Promise.resolve();
  const run = prev.catch(() => undefined).then(async () => {
    const max = s.config.maxSubscriptionsPerTenant;
    const n = await countLiveSubscriptions(s.dashboard.db, tenantId);
    if (n >= max) throw new ConflictError(`the tenant has ${n} subscriptions, the most allowed (HERALD_MAX_SUBSCRIPTIONS_PER_TENANT is ${max}); delete one first`);
    return create();
  });
  queues.set(tenantId, run);
  try {
    return await run;
  } finally {
    if (queues.get(tenantId) === run) queues.delete(tenantId);
  }
}
