import type { Attempt, Delivery, HeraldEvent, Tenant } from '../domain/model.ts';
import { typeName } from '../domain/eventTypes.ts';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const tenantView = (t: Tenant) => ({ id: t.id, name: t.name, number: t.number, client_id: t.clientId, created_at: iso(t.createdAt) });

export const eventView = (e: HeraldEvent) => ({
  id: e.id, tenant_id: e.tenantId, type: typeName(e.entity, e.event), entity: e.entity, event: e.event,
  entity_id: e.entityId, entity_uri: e.entityUri, parent_type: e.parentType, parent_id: e.parentId, data: e.data,
  occurred_at: iso(e.occurredAt), created_at: iso(e.createdAt), idempotency_key: e.idempotencyKey,
});

export const deliveryView = (d: Delivery) => ({
  id: d.id, tenant_id: d.tenantId, event_id: d.eventId, subscription_id: d.subscriptionId, status: d.status,
  in_flight: d.inFlight, attempts: d.attempts, next_attempt_at: iso(d.nextAttemptAt), last_status_code: d.lastStatusCode,
  last_error: d.lastError, created_at: iso(d.createdAt), updated_at: iso(d.updatedAt),
});

export const attemptView = (a: Attempt) => ({
  id: a.id, delivery_id: a.deliveryId, attempt: a.attemptNo, started_at: iso(a.startedAt), duration_ms: a.durationMs,
  status_code: a.statusCode, error_kind: a.errorKind, error: a.error, response_body: a.responseBody, worker: a.worker,
  request_headers: a.requestHeaders,
});

/** A page of results, newest first, with the cursor for the next page (null on the last). */
export function page<T extends { id: string | number }, V>(items: T[], limit: number, view: (t: T) => V) {
  return { data: items.map(view), next_cursor: items.length === limit ? String(items.at(-1)!.id) : null };
}
