import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError, NotFoundError, UnprocessableError, ValidationError } from '../../domain/errors.ts';
import { typeName } from '../../domain/eventTypes.ts';
import { isUuid, type SubscriptionId } from '../../domain/ids.ts';
import type { Subscription, Tenant } from '../../domain/model.ts';
import { NOTICES } from '../../domain/notices.ts';
import { OUT_OF_SERVICE } from '../../domain/outOfService.ts';
import { EVENTS_API_WINDOW_MS } from '../../domain/retention.ts';
import { errorHandler, type ErrorRenderer } from '../../http/errors.ts';
import type { Services } from '../../http/services.ts';
import { objectBody, queryInt, queryString, reqString, type Obj } from '../../http/validate.ts';
import { hashToken, safeEqual } from '../../secrets.ts';
import { gustoEvent, gustoEventType } from './envelope.ts';
import { EVENT_TYPE_PATTERN, gustoSchemas } from './schemas.ts';
import { checkFilterCount, withSubscriptionRoom } from '../../http/limits.ts';


/** Gusto's error list. Field errors are 422 here; a body that is not JSON stays 400. */
export const gustoError: ErrorRenderer = (f) => {
  const category = f.status === 401 ? 'invalid_token'
    : f.status === 404 ? 'not_found'
    : f.status === 409 ? 'conflict'
    : f.status === 422 ? 'invalid_attribute_value'
    : f.status >= 500 ? 'internal_error'
    : 'invalid_request';
  // error_key names the attribute (`subscription_types`), not an item of it; the message keeps the item.
  const key = f.field && f.field !== 'body' ? f.field.replace(/\[\d+\].*$/, '') : 'base';
  const message = f.field && key === f.field && f.message.startsWith(f.field + ' ') ? f.message.slice(f.field.length + 1) : f.message;
  return { errors: [{ error_key: key, category, message }] };
};

/** Every field error in this dialect is a 422 except a body that is not a JSON object. */
const as422 = (err: unknown) => (err instanceof ValidationError && err.status === 400 && err.field !== 'body' ? new UnprocessableError(err.field, err.message) : err);

export const subscriptionView = (s: Subscription) => ({
  uuid: s.id,
  url: s.url,
  status: s.status,
  subscription_types: s.filters.map((f) => f.replace(/\.\*$/, '')),
});

const tenants = new WeakMap<FastifyRequest, Tenant>();

/** The Gusto-style dialect: webhook subscriptions with a verification handshake, and the events API. */
export function gustoRoutes(s: Services) {
  const tenantOf = (req: FastifyRequest) => tenants.get(req)!;

  const owned = async (req: FastifyRequest<{ Params: { uuid: string } }>): Promise<Subscription> => {
    const sub = isUuid(req.params.uuid) ? await s.store.getSubscription(tenantOf(req).id, req.params.uuid, 'gusto') : null;
    if (!sub) throw new NotFoundError('webhook subscription');
    return sub;
  };

  const parseTypes = async (o: Obj): Promise<string[]> => {
    const v = o.subscription_types;
    if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string')) throw new UnprocessableError('subscription_types', 'must be a non-empty array of strings');
    checkFilterCount(s, v, 'subscription_types');
    const entities = new Set((await s.store.listEventTypes()).map((t) => t.entity));
    const unknown = (v as string[]).filter((t) => !entities.has(t));
    if (unknown.length) throw new UnprocessableError('subscription_types', `unknown subscription types: ${unknown.join(', ')}`);
    return [...new Set(v as string[])];
  };

  const tokenOf = (sub: Subscription) => s.box.open(sub.secrets[0]!.enc);

  return async function (app: FastifyInstance): Promise<void> {
    app.setErrorHandler((err, req, reply) => errorHandler(gustoError)(as422(err), req, reply));
    app.addHook('onRequest', async (req) => {
      const m = /^(Token|Bearer)\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (!m) throw new AuthError('an Authorization: Token (or Bearer) header with the API token is required');
      const t = await s.store.tenantByApiTokenHash(hashToken(m[2]!));
      if (!t) throw new AuthError('the API token is not valid');
      tenants.set(req, t);
    });

    app.post('/v1/webhook_subscriptions', { schema: gustoSchemas.create }, async (req, reply) => {
      const o = objectBody(req.body);
      const url = reqString(o, 'url', { max: 2000 });
      const why = await s.guard.checkUrl(url);
      if (why) throw new UnprocessableError('url', why === 'must be an absolute http(s) URL' ? why : `must be publicly routable: ${why}`);
      const types = await parseTypes(o);
      const token = randomUUID();
      // Written with its verification notice in one transaction: nothing is saved without it, nor sent without the subscription.
      const sub = await withSubscriptionRoom(s, tenantOf(req).id, () => s.store.createSubscription({
        tenantId: tenantOf(req).id, dialect: 'gusto', url, description: '', filters: types.map((t) => `${t}.*`),
        paused: false, enabled: false, status: 'pending', secrets: [{ enc: s.box.seal(token), expiresAt: null }],
        headers: {}, properties: {}, ordering: s.config.gustoOrdering,
      }, NOTICES.verification));
      s.wake();
      return reply.status(201).send(subscriptionView(sub));
    });

    app.get('/v1/webhook_subscriptions', { schema: gustoSchemas.list }, async (req) => (await s.store.listSubscriptions(tenantOf(req).id, 'gusto')).map(subscriptionView));

    app.get<{ Params: { uuid: string } }>('/v1/webhook_subscriptions/:uuid', { schema: gustoSchemas.get }, async (req) => subscriptionView(await owned(req)));

    app.put<{ Params: { uuid: string } }>('/v1/webhook_subscriptions/:uuid', { schema: gustoSchemas.update }, async (req) => {
      const sub = await owned(req);
      const o = objectBody(req.body);
      if (o.url !== undefined && o.url !== sub.url) throw new UnprocessableError('url', 'cannot be changed; create a new subscription for a new url');
      const types = await parseTypes(o);
      const updated = await s.store.updateSubscription(sub.tenantId, sub.id, { filters: types.map((t) => `${t}.*`) });
      if (!updated) throw new NotFoundError('webhook subscription');
      return subscriptionView(updated);
    });

    app.delete<{ Params: { uuid: string } }>('/v1/webhook_subscriptions/:uuid', { schema: gustoSchemas.delete }, async (req, reply) => {
      const sub = await owned(req);
      await s.store.deleteSubscription(sub.tenantId, sub.id);
      return reply.status(204).send();
    });

    app.put<{ Params: { uuid: string } }>('/v1/webhook_subscriptions/:uuid/verify', { schema: gustoSchemas.verify }, async (req) => {
      const sub = await owned(req);
      const given = reqString(objectBody(req.body), 'verification_token', { max: 100 });
      if (!safeEqual(given, tokenOf(sub))) throw new UnprocessableError('verification_token', 'does not match the token sent to the subscription url');
      if (sub.status === 'verified') return subscriptionView(sub);
      // Out of service (unreachable) means paused as well: verifying again releases what was held.
      const resume = sub.status === OUT_OF_SERVICE.gusto.status;
      const updated = await s.store.updateSubscription(sub.tenantId, sub.id, { status: 'verified', enabled: true, ...(resume ? { paused: false } : {}) });
      if (!updated) throw new NotFoundError('webhook subscription');
      if (resume) s.wake();
      return subscriptionView(updated);
    });

    app.get<{ Params: { uuid: string } }>('/v1/webhook_subscriptions/:uuid/request_verification_token', { schema: gustoSchemas.requestToken }, async (req) => {
      const sub = await owned(req);
      if (!(await s.store.sendNotice(sub.tenantId, sub.id as SubscriptionId, NOTICES.verification))) throw new NotFoundError('webhook subscription');
      s.wake();
      return { message: `A verification token is on its way to ${sub.url}` };
    });

    app.get('/v1/webhooks/health_check', { schema: gustoSchemas.health }, async (req) => {
      const t = tenantOf(req);
      const subs = await s.store.listSubscriptions(t.id, 'gusto');
      const last = await s.store.lastAttempt(t.id, 'gusto');
      const ok = last !== null && last.statusCode !== null && last.statusCode >= 200 && last.statusCode < 300;
      const status = subs.some((x) => x.status === 'unreachable') ? 'unhealthy' : last === null ? 'unknown' : ok ? 'healthy' : 'unhealthy';
      return { status, last_checked_at: last ? new Date(last.startedAt).toISOString() : null };
    });

    app.get('/v1/events', { schema: gustoSchemas.events }, async (req) => {
      const q = (req.query ?? {}) as Obj;
      const limit = queryInt(q, 'limit', 25, 1, 100);
      const order = queryString(q, 'sort_order') ?? 'asc';
      if (order !== 'asc' && order !== 'desc') throw new UnprocessableError('sort_order', 'must be asc or desc');
      const after = queryString(q, 'starting_after_uuid');
      if (after !== undefined && !isUuid(after)) throw new UnprocessableError('starting_after_uuid', 'must be an event uuid');
      const pattern = queryString(q, 'event_type');
      let types: string[] | undefined;
      if (pattern !== undefined) {
        if (!EVENT_TYPE_PATTERN.test(pattern)) throw new UnprocessableError('event_type', 'must be an event type such as employee.created, with * as a wildcard');
        const re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.]/g, '\\.')).join('.*') + '$');
        types = (await s.store.listEventTypes()).filter((t) => re.test(gustoEventType(t.entity, t.event))).map((t) => typeName(t.entity, t.event));
        if (types.length === 0) return [];
      }
      const events = await s.store.listEvents({
        tenantId: tenantOf(req).id, since: Date.now() - EVENTS_API_WINDOW_MS, types, parentId: queryString(q, 'resource_uuid'),
        after, order, limit,
      });
      return events.map(gustoEvent);
    });
  };
}
