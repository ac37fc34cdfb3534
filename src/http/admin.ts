import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError, ConflictError, NotFoundError, UnknownTenantError, UnprocessableError, ValidationError } from '../domain/errors.ts';
import { NAME_RE, typeName } from '../domain/eventTypes.ts';
import { isUuid, type DeliveryId, type EventId, type TenantId } from '../domain/ids.ts';
import type { NewEvent } from '../domain/model.ts';
import { hashToken, randomToken, safeEqual } from '../secrets.ts';
import { adminSchemas } from './adminSchemas.ts';
import { getDelivery, getDeliverySchema, listDeliveries, listDeliveriesSchema } from './operator.ts';
import { bearer, errorHandler, nativeError } from './errors.ts';
import type { Services } from './services.ts';
import { jsonDepth, objectBody, onlyKeys, optId, optObject, optString, reqString, type Obj } from './validate.ts';
import { attemptView, deliveryView, eventView, tenantView } from './views.ts';

const EVENT_KEYS = ['tenant_id', 'entity', 'event', 'entity_id', 'entity_uri', 'parent_type', 'parent_id', 'data', 'occurred_at', 'idempotency_key'];
const MAX_BATCH = 1000;
const MAX_DEPTH = 32;

function parseOccurredAt(o: Obj, prefix: string): number {
  const v = o.occurred_at;
  const field = prefix ? `${prefix}.occurred_at` : 'occurred_at';
  if (v === undefined || v === null) return Date.now();
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 1e11) return Math.round(v * 1000);
  if (typeof v === 'string') {
    const ms = Date.parse(v);
    if (/^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(ms)) return ms;
  }
  throw new ValidationError(field, 'must be an ISO-8601 date-time or unix seconds');
}

/** One published event from its JSON; `prefix` names its place in a batch. */
export function parseEvent(raw: unknown, prefix = ''): NewEvent {
  const o = objectBody(raw, prefix || 'body');
  onlyKeys(o, EVENT_KEYS, prefix);
  const name = { max: 64, pattern: NAME_RE, patternMessage: 'must be a name of letters, digits and underscores', prefix };
  const data = optObject(o, 'data', prefix) ?? {};
  if (jsonDepth(data, MAX_DEPTH) > MAX_DEPTH) throw new ValidationError(prefix ? `${prefix}.data` : 'data', `must nest at most ${MAX_DEPTH} levels`);
  if (JSON.stringify(data).length > 256 * 1024) throw new ValidationError(prefix ? `${prefix}.data` : 'data', 'must be at most 256 KB of JSON');
  return {
    tenantId: reqString(o, 'tenant_id', { max: 64, prefix }) as TenantId,
    entity: reqString(o, 'entity', name),
    event: reqString(o, 'event', name),
    entityId: (optId(o, 'entity_id', prefix) ?? (() => { throw new ValidationError(prefix ? `${prefix}.entity_id` : 'entity_id', 'is required'); })()),
    entityUri: optString(o, 'entity_uri', { max: 2000, prefix }) ?? null,
    parentType: optString(o, 'parent_type', { ...name, min: 1 }) ?? null,
    parentId: optId(o, 'parent_id', prefix) ?? null,
    data,
    occurredAt: parseOccurredAt(o, prefix),
    idempotencyKey: optString(o, 'idempotency_key', { min: 1, max: 200, prefix }) ?? null,
  };
}

export function adminRoutes(s: Services) {
  const checkTenants = async (events: NewEvent[], prefixOf: (i: number) => string) => {
    const known = new Map<string, boolean>();
    for (const [i, e] of events.entries()) {
      if (!known.has(e.tenantId)) known.set(e.tenantId, (await s.store.getTenant(e.tenantId)) !== null);
      if (!known.get(e.tenantId)) throw new UnprocessableError(prefixOf(i) ? `${prefixOf(i)}.tenant_id` : 'tenant_id', `tenant ${e.tenantId} does not exist`);
    }
  };

  // Event types are added or described again, never removed: a name once known stays known,
  // so the catalog is read again only when a name is not in this process's copy of it (one
  // that another process added since). Publishing then reads nothing before its transaction.
  let catalog: Set<string> | null = null;
  const catalogError = async (events: NewEvent[], prefixOf: (i: number) => string): Promise<UnprocessableError | null> => {
    for (let fresh = false; ; fresh = true) {
      if (fresh || !catalog) catalog = new Set((await s.store.listEventTypes()).map((t) => typeName(t.entity, t.event)));
      const i = events.findIndex((e) => !catalog!.has(typeName(e.entity, e.event)));
      if (i < 0) return null;
      if (fresh) {
        const name = typeName(events[i]!.entity, events[i]!.event);
        return new UnprocessableError(prefixOf(i) ? `${prefixOf(i)}.event` : 'event', `${name} is not in the event catalog`);
      }
    }
  };

  /**
   * Publishes after the checks, in their order: an unknown tenant is named before an unknown
   * event type. The store checks the tenants in its transaction (UnknownTenantError); only
   * when the catalog refuses are they looked up before it.
   */
  const publishChecked = async (events: NewEvent[], prefixOf: (i: number) => string) => {
    const refused = await catalogError(events, prefixOf);
    if (refused) {
      await checkTenants(events, prefixOf);
      throw refused;
    }
    try {
      return await s.store.publish(events);
    } catch (err) {
      if (err instanceof UnknownTenantError && prefixOf(err.eventIndex)) throw new UnprocessableError(`${prefixOf(err.eventIndex)}.tenant_id`, err.message);
      throw err;
    }
  };

  const publishView = (r: { event: Parameters<typeof eventView>[0]; deliveries: number; duplicate: boolean }) => ({ ...eventView(r.event), deliveries: r.deliveries, duplicate: r.duplicate });

  return async function (app: FastifyInstance): Promise<void> {
    app.setErrorHandler(errorHandler(nativeError));
    app.addHook('onRequest', async (req: FastifyRequest) => {
      const token = bearer(req);
      if (!token) throw new AuthError('an Authorization: Bearer header with the admin token is required');
      if (!safeEqual(token, s.config.adminToken)) throw new AuthError('the admin token is not valid');
    });

    app.post('/tenants', { schema: adminSchemas.createTenant }, async (req, reply) => {
      const o = objectBody(req.body);
      onlyKeys(o, ['name']);
      const name = reqString(o, 'name', { max: 200 });
      const credentials = {
        client_id: randomToken('hcl_', 16),
        client_secret: randomToken('hcs_', 32),
        subscription_key: randomToken('', 16).replace(/[-_]/g, 'x'),
        api_token: randomToken('hat_', 32),
      };
      const t = await s.store.createTenant(name, credentials.client_id, {
        clientSecretHash: hashToken(credentials.client_secret),
        subscriptionKeyHash: hashToken(credentials.subscription_key),
        apiTokenHash: hashToken(credentials.api_token),
      });
      return reply.status(201).send({ ...tenantView(t), credentials });
    });

    app.get('/tenants', { schema: adminSchemas.listTenants }, async () => ({ data: (await s.store.listTenants()).map(tenantView) }));

    app.get<{ Params: { id: string } }>('/tenants/:id', { schema: adminSchemas.getTenant }, async (req) => {
      const t = await s.store.getTenant(req.params.id);
      if (!t) throw new NotFoundError('tenant');
      return tenantView(t);
    });

    app.delete<{ Params: { id: string } }>('/tenants/:id', { schema: adminSchemas.deleteTenant }, async (req, reply) => {
      if (!(await s.store.deleteTenant(req.params.id))) throw new NotFoundError('tenant');
      return reply.status(204).send();
    });

    app.get('/event-types', { schema: adminSchemas.listEventTypes }, async () => ({
      data: (await s.store.listEventTypes()).map((t) => ({ type: typeName(t.entity, t.event), ...t })),
    }));

    app.post('/event-types', { schema: adminSchemas.putEventType }, async (req, reply) => {
      const o = objectBody(req.body);
      onlyKeys(o, ['entity', 'event', 'description']);
      const name = { max: 64, pattern: NAME_RE, patternMessage: 'must be a name of letters, digits and underscores' };
      const t = { entity: reqString(o, 'entity', name), event: reqString(o, 'event', name), description: optString(o, 'description', { max: 500 }) ?? '' };
      const created = await s.store.putEventType(t);
      return reply.status(created ? 201 : 200).send({ type: typeName(t.entity, t.event), ...t });
    });

    app.post('/events', { schema: adminSchemas.publish }, async (req, reply) => {
      const e = parseEvent(req.body);
      const [r] = await publishChecked([e], () => '');
      s.wake();
      return reply.status(202).send(publishView(r!));
    });

    // 32 MB by default: room for 1,000 events of 32 KB each, well inside the heap `npm start` gives Herald.
    app.post('/events/batch', { bodyLimit: s.config.maxBatchBodyBytes, schema: adminSchemas.publishBatch }, async (req, reply) => {
      const o = objectBody(req.body);
      onlyKeys(o, ['events']);
      const list = o.events;
      if (!Array.isArray(list) || list.length === 0) throw new ValidationError('events', 'must be a non-empty array');
      if (list.length > MAX_BATCH) throw new ValidationError('events', `must hold at most ${MAX_BATCH} events`);
      const events = list.map((e, i) => parseEvent(e, `events[${i}]`));
      const results = await publishChecked(events, (i) => `events[${i}]`);
      s.wake();
      // The events were just sent; the answer names them rather than echoing their data.
      return reply.status(202).send({
        events: results.map((r) => ({ id: r.event.id, type: typeName(r.event.entity, r.event.event), idempotency_key: r.event.idempotencyKey, deliveries: r.deliveries, duplicate: r.duplicate })),
      });
    });

    app.get<{ Params: { id: string } }>('/events/:id', { schema: adminSchemas.getEvent }, async (req) => {
      const e = isUuid(req.params.id) ? await s.store.getEvent(req.params.id) : null;
      if (!e) throw new NotFoundError('event');
      const deliveries = await s.store.listDeliveries({ eventId: e.id as EventId, limit: 10_000 });
      const withAttempts = await Promise.all(deliveries.map(async (d) => ({ ...deliveryView(d), attempt_log: (await s.store.listAttempts(d.id)).map(attemptView) })));
      return { ...eventView(e), deliveries: withAttempts };
    });

    // The dashboard's filters (event type, time range) and each delivery's event type: see operator.ts.
    app.get('/deliveries', { schema: listDeliveriesSchema }, listDeliveries(s));

    app.get<{ Params: { id: string } }>('/deliveries/:id', { schema: getDeliverySchema }, getDelivery(s));

    app.post<{ Params: { id: string } }>('/deliveries/:id/retry', { schema: adminSchemas.retryDelivery }, async (req, reply) => {
      const d = await s.store.retryNow(req.params.id as DeliveryId);
      if (d === null) throw new NotFoundError('delivery');
      if (d === 'busy') throw new ConflictError('the delivery is in flight, or its subscription is paused or deleted');
      s.wake();
      return reply.status(202).send(deliveryView(d));
    });
  };
}
