// Rows as the engines return them, turned into Herald's records. Shared by every store verb.
import type { Attempt, AttemptRecord, Delivery, HeraldEvent, Subscription, Tenant } from '../domain/model.ts';
import type { DeliveryState, ErrorKind } from '../domain/states.ts';

export type Row = Record<string, any>;

export const json = (v: unknown): string => JSON.stringify(v);

export const tenantOf = (r: Row): Tenant => ({
  id: r.id, number: Number(r.number), name: r.name, clientId: r.client_id, createdAt: Number(r.created_at),
});

export const subscriptionOf = (r: Row): Subscription => ({
  id: r.id, tenantId: r.tenant_id, dialect: r.dialect, url: r.url, description: r.description,
  filters: JSON.parse(r.filters), paused: Boolean(r.paused), enabled: Boolean(r.enabled), status: r.status,
  secrets: JSON.parse(r.secrets), headers: JSON.parse(r.headers), properties: JSON.parse(r.properties),
  ordering: r.ordering ?? 'none',
  createdAt: Number(r.created_at), updatedAt: Number(r.updated_at),
});

/** The columns of an event's row, in the order publishes write them (eventOf reads them all). */
export const EVENT_COLUMNS = ['id', 'tenant_id', 'entity', 'event', 'entity_id', 'entity_uri', 'parent_type', 'parent_id', 'data', 'occurred_at', 'created_at', 'idempotency_key'];

export const eventOf = (r: Row): HeraldEvent => ({
  id: r.id, tenantId: r.tenant_id, entity: r.entity, event: r.event, entityId: r.entity_id,
  entityUri: r.entity_uri, parentType: r.parent_type, parentId: r.parent_id, data: JSON.parse(r.data),
  occurredAt: Number(r.occurred_at), createdAt: Number(r.created_at), idempotencyKey: r.idempotency_key,
});

export function deliveryOf(r: Row, now = Date.now()): Delivery {
  const leased = r.lease_token !== null && r.status === 'pending' && Number(r.next_attempt_at) > now;
  return {
    id: r.id, tenantId: r.tenant_id, eventId: r.event_id, subscriptionId: r.subscription_id,
    status: r.status as DeliveryState, attempts: Number(r.attempts), throttled: Number(r.throttled ?? 0),
    // Null too while it waits behind an earlier delivery of its entity (ordered subscriptions).
    nextAttemptAt: r.status === 'pending' && !leased && r.next_attempt_at !== null ? Number(r.next_attempt_at) : null,
    inFlight: leased, lastStatusCode: r.last_status_code === null ? null : Number(r.last_status_code),
    lastError: r.last_error, createdAt: Number(r.created_at), updatedAt: Number(r.updated_at),
  };
}

export const attemptOf = (r: Row): Attempt => ({
  id: Number(r.id), deliveryId: r.delivery_id, attemptNo: Number(r.attempt_no), startedAt: Number(r.started_at),
  durationMs: Number(r.duration_ms), statusCode: r.status_code === null ? null : Number(r.status_code),
  errorKind: r.error_kind as ErrorKind | null, error: r.error, responseBody: r.response_body, worker: r.worker,
  requestHeaders: r.request_headers ? JSON.parse(r.request_headers) : null,
});

export const headersJson = (a: AttemptRecord): string | null => (a.requestHeaders ? JSON.stringify(a.requestHeaders) : null);
