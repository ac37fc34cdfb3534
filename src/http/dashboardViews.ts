// What the operator and portal APIs share: subscription health, the views of the dashboard
// contract, the deliveries query, and the route schemas that describe them.
import { ValidationError } from '../domain/errors.ts';
import { isUuid, type SubscriptionId, type TenantId } from '../domain/ids.ts';
import { DELIVERY_STATES, type DeliveryState } from '../domain/states.ts';
import type { Store } from '../store/store.ts';
import type { AttemptStats, DashboardStore, DeliveryQuery, DeliveryWithType, SubscriptionWithTenant } from '../store/queries/dashboard.ts';
import { arr, attemptSchema, bool, deliverySchema, int, isoTime, nullable, obj, str, type JsonSchema } from './schemas.ts';
import { queryInt, queryString, type Obj } from './validate.ts';
import { attemptView, deliveryView } from './views.ts';

export const HEALTH_STATES = ['healthy', 'failing', 'unreachable', 'paused', 'disabled', 'idle'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

const HOUR_MS = 3_600_000;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** No HTTP answer at all: the receiver could not be reached (a rendering failure is Herald's, not the receiver's). */
const NO_ANSWER = new Set(['timeout', 'connection', 'dns', 'tls', 'refused_address']);

/**
 * A subscription's state, first from its own flags, then from the last hour of attempts:
 * - `unreachable`: taken out of service after its retries ran out (Gusto-style), or failing
 *   with no HTTP answer to its latest attempt (refused, timed out, no DNS name);
 * - `disabled`: receives nothing (answered 410 Gone, or not verified yet);
 * - `paused`: deliveries are made and held;
 * - `idle`: no attempt in the last hour;
 * - `failing`: its latest attempt failed, or fewer than half of the last hour's succeeded;
 * - `healthy` otherwise.
 */
export function healthState(sub: SubscriptionWithTenant, st: AttemptStats): HealthState {
  if (sub.status === 'unreachable') return 'unreachable';
  if (sub.deletedAt !== null || sub.status === 'disabled' || !sub.enabled) return 'disabled';
  if (sub.paused) return 'paused';
  if (st.attempts === 0) return 'idle';
  const last = st.last;
  const lastFailed = last !== null && !(last.statusCode !== null && last.statusCode >= 200 && last.statusCode < 300);
  if (lastFailed || st.failures * 2 > st.attempts) {
    return last !== null && last.statusCode === null && last.errorKind !== null && NO_ANSWER.has(last.errorKind) ? 'unreachable' : 'failing';
  }
  return 'healthy';
}

export function summaryView(sub: SubscriptionWithTenant, st: AttemptStats) {
  return {
    id: sub.id, tenant_id: sub.tenantId, tenant_name: sub.tenantName, dialect: sub.dialect, url: sub.url, description: sub.description,
    filters: sub.filters, paused: sub.paused, enabled: sub.enabled, status: sub.status, created_at: iso(sub.createdAt),
    health: {
      state: healthState(sub, st),
      success_rate_1h: st.attempts === 0 ? null : (st.attempts - st.failures) / st.attempts,
      attempts_1h: st.attempts,
      failures_1h: st.failures,
      last_attempt_at: iso(st.last?.startedAt ?? null),
      last_status_code: st.last?.statusCode ?? null,
      last_error_kind: st.last?.errorKind ?? null,
    },
  };
}

/** Summaries of these subscriptions, with their health as of now. */
export async function summaries(d: DashboardStore, subs: SubscriptionWithTenant[], now = Date.now()) {
  const stats = await d.attemptStats(subs.map((x) => x.id), now - HOUR_MS);
  const none: AttemptStats = { attempts: 0, failures: 0, last: null };
  return subs.map((x) => summaryView(x, stats.get(x.id) ?? none));
}

export const dashboardDeliveryView = (d: DeliveryWithType) => ({ ...deliveryView(d), event_type: d.eventType });

/** One delivery with each of its attempts, oldest first. */
export async function deliveryDetail(store: Store, del: DeliveryWithType) {
  return { ...dashboardDeliveryView(del), attempt_log: (await store.listAttempts(del.id)).map(attemptView) };
}

/** `Entity.Event`; Herald's own notices (`$herald.test`) can be looked for too. */
const EVENT_TYPE_RE = /^(\$herald|[A-Za-z][A-Za-z0-9_]{0,63})\.([A-Za-z][A-Za-z0-9_]{0,63})$/;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

function queryTime(q: Obj, key: string): number | undefined {
  const v = queryString(q, key);
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (!ISO_RE.test(v) || Number.isNaN(ms)) throw new ValidationError(key, 'must be an ISO-8601 date-time such as 2025-01-31T09:00:00Z');
  return ms;
}

export function queryUuid(q: Obj, key: string): string | undefined {
  const v = queryString(q, key);
  if (v !== undefined && !isUuid(v)) throw new ValidationError(key, 'must be a UUID');
  return v?.toLowerCase();
}

/** The filters of a deliveries list, validated; `tenant_id` only where `withTenant`. */
export function parseDeliveryQuery(raw: unknown, withTenant: boolean): DeliveryQuery {
  const q = (raw ?? {}) as Obj;
  if (!withTenant && q.tenant_id !== undefined) throw new ValidationError('tenant_id', 'is not accepted here: the portal lists its own tenant\'s deliveries only');
  const status = queryString(q, 'status');
  if (status !== undefined && !DELIVERY_STATES.includes(status as DeliveryState)) throw new ValidationError('status', `must be one of ${DELIVERY_STATES.join(', ')}`);
  const type = queryString(q, 'event_type');
  const m = type === undefined ? null : EVENT_TYPE_RE.exec(type);
  if (type !== undefined && !m) throw new ValidationError('event_type', 'must be an event type, Entity.Event');
  const since = queryTime(q, 'since');
  const until = queryTime(q, 'until');
  if (since !== undefined && until !== undefined && until < since) throw new ValidationError('until', 'must not be before since');
  const cursor = queryString(q, 'cursor');
  if (cursor !== undefined && !isUuid(cursor)) throw new ValidationError('cursor', 'must be a cursor from an earlier page');
  return {
    tenantId: withTenant ? queryString(q, 'tenant_id') as TenantId | undefined : undefined,
    subscriptionId: queryUuid(q, 'subscription_id') as SubscriptionId | undefined,
    eventId: queryUuid(q, 'event_id'),
    status: status as DeliveryState | undefined,
    eventType: m ? { entity: m[1]!, event: m[2]! } : undefined,
    since,
    until,
    before: cursor?.toLowerCase(),
    limit: queryInt(q, 'limit', 50, 1, 500),
  };
}

// ---- schemas ---------------------------------------------------------------------------

export const healthSchema = obj({
  state: str({ enum: HEALTH_STATES, description: 'healthy, failing, unreachable (out of service, or no answer), paused, disabled (410 Gone, not verified) or idle (no attempt in the last hour)' }),
  success_rate_1h: { type: ['number', 'null'], minimum: 0, maximum: 1, description: 'share of the last hour\'s attempts answered 2xx; null with none' },
  attempts_1h: int({ min: 0, description: 'attempts in the last hour (counted within the newest 1,000)' }),
  failures_1h: int({ min: 0 }),
  last_attempt_at: isoTime('the latest attempt, at any time'),
  last_status_code: { type: ['integer', 'null'] },
  last_error_kind: { type: ['string', 'null'] },
}, { required: ['state', 'success_rate_1h', 'attempts_1h', 'failures_1h', 'last_attempt_at', 'last_status_code', 'last_error_kind'] });

export const summarySchema = obj({
  id: str({ format: 'uuid' }),
  tenant_id: str(),
  tenant_name: str(),
  dialect: str({ enum: ['native', 'paycor', 'gusto'] }),
  url: str(),
  description: str(),
  filters: arr(str()),
  paused: bool(),
  enabled: bool('false: no deliveries are made for it (not verified, or out of service)'),
  status: str({ description: 'the dialect\'s own state: active, pending, verified, unreachable, disabled' }),
  created_at: isoTime(),
  health: healthSchema,
}, { required: ['id', 'tenant_id', 'tenant_name', 'dialect', 'url', 'paused', 'enabled', 'status', 'health'] });

const withEventType = (s: JsonSchema): JsonSchema => ({ ...s, properties: { ...(s.properties as object), event_type: str({ description: 'Entity.Event' }) } });

export const attemptWithHeadersSchema: JsonSchema = {
  ...attemptSchema,
  properties: {
    ...(attemptSchema.properties as object),
    request_headers: nullable({ type: 'object', additionalProperties: { type: 'string' }, description: 'the headers Herald sent; custom headers that look secret read "[redacted]"; null for attempts recorded before Herald kept them' }),
  },
};

export const dashboardDeliverySchema = withEventType(deliverySchema);
export const dashboardDeliveryDetailSchema: JsonSchema = { ...dashboardDeliverySchema, properties: { ...(dashboardDeliverySchema.properties as object), attempt_log: arr(attemptWithHeadersSchema) } };

const uuidQuery = (description: string) => str({ format: 'uuid', description });

/** The deliveries list's query string. */
export function deliveriesQuerySchema(withTenant: boolean): JsonSchema {
  return obj({
    ...(withTenant ? { tenant_id: str({ description: 'only this tenant\'s' }) } : {}),
    subscription_id: uuidQuery('only this subscription\'s'),
    event_id: uuidQuery('only this event\'s'),
    status: str({ enum: DELIVERY_STATES }),
    event_type: str({ pattern: EVENT_TYPE_RE, message: 'must be an event type, Entity.Event', description: 'Entity.Event' }),
    since: str({ format: 'date-time', description: 'created at or after (ISO-8601)' }),
    until: str({ format: 'date-time', description: 'created at or before (ISO-8601)' }),
    limit: int({ min: 1, max: 500, default: 50 }),
    cursor: str({ description: 'the next_cursor of the page before' }),
  }, { open: true });
}

/** The `text/event-stream` answer of the stream routes. */
export const streamResponse: JsonSchema = {
  type: 'string',
  description: 'Server-Sent Events: `event: attempt` with data JSON { id, delivery_id, subscription_id, tenant_id, event_id, event_type, attempt, status_code, error_kind, duration_ms, started_at, delivery_status } for each new attempt; a comment line as keep-alive every 15 s',
};

export const unavailableSchema = obj({
  error: obj({ code: str({ enum: ['unavailable'] }), message: str() }, { required: ['code', 'message'] }),
}, { required: ['error'], description: 'Too many live streams are open in this process; try again shortly' });
