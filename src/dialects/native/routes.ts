import type { FastifyInstance, FastifyRequest } from 'fastify';
import { apiTokenAuth } from '../../http/apiTokenAuth.ts';
import { NotFoundError, UnprocessableError, ValidationError } from '../../domain/errors.ts';
import { unknownFilters } from '../../domain/eventTypes.ts';
import type { DeliveryId, SubscriptionId } from '../../domain/ids.ts';
import { ORDERINGS, type Ordering, type Subscription, type Tenant } from '../../domain/model.ts';
import { errorHandler, nativeError } from '../../http/errors.ts';
import type { Services } from '../../http/services.ts';
import { objectBody, onlyKeys, optBool, optString, optStringArray, queryInt, queryString, reqString, type Obj } from '../../http/validate.ts';
import { attemptView, deliveryView, page } from '../../http/views.ts';
import { FILTER_RE, nativeSchemas } from './schemas.ts';
import { checkFilterCount, withSubscriptionRoom } from '../../http/limits.ts';
import { newStandardSecret, rotateStandardSecret } from './rotate.ts';

const iso = (ms: number) => new Date(ms).toISOString();

export const endpointView = (s: Subscription) => ({
  id: s.id, url: s.url, description: s.description, filters: s.filters, paused: s.paused, status: s.status, ordering: s.ordering,
  created_at: iso(s.createdAt), updated_at: iso(s.updatedAt),
});

export { newStandardSecret };

const tenants = new WeakMap<FastifyRequest, Tenant>();

/** `ordering`: none or entity; null or absent: not given. */
function optOrdering(o: Obj): Ordering | undefined {
  const v = o.ordering;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !(ORDERINGS as readonly string[]).includes(v)) throw new ValidationError('ordering', 'must be none or entity');
  return v as Ordering;
}

/** The tenant's own API: endpoints signed the Standard Webhooks way. */
export function nativeRoutes(s: Services) {
  const tenantOf = (req: FastifyRequest) => tenants.get(req)!;

  const checkUrl = async (url: string) => {
    const why = await s.guard.checkUrl(url);
    if (why === 'must be an absolute http(s) URL') throw new ValidationError('url', why);
    if (why) throw new UnprocessableError('url', why);
  };

  const checkFilters = async (filters: string[]) => {
    filters.forEach((f, i) => {
      if (!FILTER_RE.test(f)) throw new ValidationError(`filters[${i}]`, 'must be Entity.Event (either side may be *)');
    });
    const unknown = unknownFilters(filters, await s.store.listEventTypes());
    if (unknown.length) throw new UnprocessableError('filters', `match no event in the catalog: ${unknown.join(', ')}`);
  };

  const owned = async (req: FastifyRequest<{ Params: { id: string } }>): Promise<Subscription> => {
    const sub = await s.store.getSubscription(tenantOf(req).id, req.params.id, 'native');
    if (!sub) throw new NotFoundError('endpoint');
    return sub;
  };

  /** The fields a PUT (whole) or PATCH (partial) may set, validated. */
  const parseChange = async (body: unknown, whole: boolean) => {
    const o = objectBody(body);
    onlyKeys(o, ['url', 'description', 'filters', 'paused', 'ordering']);
    const url = whole ? reqString(o, 'url', { max: 2000 }) : optString(o, 'url', { min: 1, max: 2000 });
    if (url !== undefined) await checkUrl(url);
    checkFilterCount(s, o.filters, 'filters');
    const filters = optStringArray(o, 'filters', { maxItems: s.config.maxFiltersPerSubscription });
    if (filters) await checkFilters(filters);
    const description = optString(o, 'description', { max: 1000 });
    const paused = optBool(o, 'paused');
    const ordering = optOrdering(o);
    if (!whole) return { url, description, filters, paused, ordering };
    return { url, description: description ?? '', filters: filters ?? [], paused: paused ?? false, ordering: ordering ?? 'none' };
  };

  return async function (app: FastifyInstance): Promise<void> {
    app.setErrorHandler(errorHandler(nativeError));
    app.addHook('onRequest', apiTokenAuth(s, tenants));

    app.post('/endpoints', { schema: nativeSchemas.createEndpoint }, async (req, reply) => {
      const c = await parseChange(req.body, true);
      const secret = newStandardSecret();
      const sub = await withSubscriptionRoom(s, tenantOf(req).id, () => s.store.createSubscription({
        tenantId: tenantOf(req).id, dialect: 'native', url: c.url!, description: c.description!, filters: c.filters!,
        paused: c.paused!, enabled: true, status: 'active', secrets: [{ enc: s.box.seal(secret), expiresAt: null }],
        headers: {}, properties: {}, ordering: c.ordering,
      }));
      return reply.status(201).send({ ...endpointView(sub), secret });
    });

    app.get('/endpoints', { schema: nativeSchemas.listEndpoints }, async (req) => ({ data: (await s.store.listSubscriptions(tenantOf(req).id, 'native')).map(endpointView) }));

    app.get<{ Params: { id: string } }>('/endpoints/:id', { schema: nativeSchemas.getEndpoint }, async (req) => endpointView(await owned(req)));

    const change = (whole: boolean) => async (req: FastifyRequest<{ Params: { id: string } }>) => {
      const sub = await owned(req);
      const c = await parseChange(req.body, whole);
      const patch: Partial<Subscription> = {};
      for (const k of ['url', 'description', 'filters', 'paused', 'ordering'] as const) if (c[k] !== undefined) (patch as Obj)[k] = c[k];
      // Unpausing is how an endpoint disabled by a 410 Gone is turned back on.
      if (c.paused === false) patch.status = 'active';
      const updated = await s.store.updateSubscription(sub.tenantId, sub.id, patch);
      if (!updated) throw new NotFoundError('endpoint');
      if (sub.paused && !updated.paused) s.wake();
      return endpointView(updated);
    };
    app.patch<{ Params: { id: string } }>('/endpoints/:id', { schema: nativeSchemas.patchEndpoint }, change(false));
    app.put<{ Params: { id: string } }>('/endpoints/:id', { schema: nativeSchemas.putEndpoint }, change(true));

    app.delete<{ Params: { id: string } }>('/endpoints/:id', { schema: nativeSchemas.deleteEndpoint }, async (req, reply) => {
      const sub = await owned(req);
      await s.store.deleteSubscription(sub.tenantId, sub.id);
      return reply.status(204).send();
    });

    app.post<{ Params: { id: string } }>('/endpoints/:id/rotate-secret', { schema: nativeSchemas.rotateSecret }, async (req) => {
      const sub = await owned(req);
      const r = await rotateStandardSecret(s, sub);
      if (!r) throw new NotFoundError('endpoint');
      return { secret: r.secret, previous_secrets_valid_until: r.previousValidUntil === null ? null : iso(r.previousValidUntil) };
    });

    app.get<{ Params: { id: string } }>('/endpoints/:id/deliveries', { schema: nativeSchemas.listDeliveries }, async (req) => {
      const sub = await owned(req);
      const q = (req.query ?? {}) as Obj;
      const limit = queryInt(q, 'limit', 50, 1, 500);
      const items = await s.store.listDeliveries({ subscriptionId: sub.id, before: queryString(q, 'cursor') as DeliveryId | undefined, limit });
      return page(items, limit, deliveryView);
    });

    app.get<{ Params: { id: string; did: string } }>('/endpoints/:id/deliveries/:did', { schema: nativeSchemas.getDelivery }, async (req) => {
      const sub = await owned(req);
      const d = await s.store.getDelivery(req.params.did);
      if (!d || d.subscriptionId !== sub.id) throw new NotFoundError('delivery');
      return { ...deliveryView(d), attempt_log: (await s.store.listAttempts(d.id)).map(attemptView) };
    });

    app.get<{ Params: { id: string } }>('/endpoints/:id/attempts', { schema: nativeSchemas.listAttempts }, async (req) => {
      const sub = await owned(req);
      const q = (req.query ?? {}) as Obj;
      const limit = queryInt(q, 'limit', 50, 1, 500);
      const cursor = queryString(q, 'cursor');
      if (cursor !== undefined && !/^\d+$/.test(cursor)) throw new ValidationError('cursor', 'must be a cursor from an earlier page');
      const items = await s.store.listAttemptsBySubscription(sub.id as SubscriptionId, cursor === undefined ? null : Number(cursor), limit);
      return page(items, limit, attemptView);
    });
  };
}
