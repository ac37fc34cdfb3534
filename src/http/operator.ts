// The operator's side of the dashboard, under /admin/v1 beside the admin API: subscription
// health across tenants, pause and resume, portal links for subscribers, and the live
// stream of attempts. The deliveries list and detail are the admin API's own routes
// (admin.ts), which call the handlers here.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError, NotFoundError, UnprocessableError, ValidationError } from '../domain/errors.ts';
import type { SubscriptionId, TenantId } from '../domain/ids.ts';
import type { SubscriptionPatch } from '../domain/model.ts';
import { DIALECTS, type Dialect } from '../domain/states.ts';
import { OUT_OF_SERVICE } from '../domain/outOfService.ts';
import { safeEqual } from '../secrets.ts';
import type { SubscriptionWithTenant } from '../store/queries/dashboard.ts';
import type { AttemptStream } from './attemptStream.ts';
import {
  dashboardDeliveryDetailSchema, dashboardDeliverySchema, dashboardDeliveryView, deliveriesQuerySchema, deliveryDetail, HEALTH_STATES,
  parseDeliveryQuery, streamResponse, summaries, summarySchema, unavailableSchema, type HealthState,
} from './dashboardViews.ts';
import { bearer, errorHandler, nativeError } from './errors.ts';
import type { PortalLinks } from './portalLinks.ts';
import { idParams, int, isoTime, obj, pageOf, route, str } from './schemas.ts';
import type { Services } from './services.ts';
import { objectBody, onlyKeys, queryInt, queryString, reqString, type Obj } from './validate.ts';
import { page } from './views.ts';

const TAGS = ['dashboard'];

export const listDeliveriesSchema = route('native', {
  summary: 'List deliveries, newest first, by tenant, subscription, event, status, event type and time',
  tags: ['deliveries'],
  querystring: deliveriesQuerySchema(true),
  response: { 200: pageOf(dashboardDeliverySchema) },
});

export const getDeliverySchema = route('native', {
  summary: 'One delivery with each attempt: status, duration, error, the first 1 KB of the answer, the headers sent',
  tags: ['deliveries'],
  params: idParams(),
  response: { 200: dashboardDeliveryDetailSchema },
});

/** `GET /admin/v1/deliveries`: any tenant's, with every filter of the dashboard. */
export function listDeliveries(s: Services) {
  return async (req: FastifyRequest) => {
    const q = parseDeliveryQuery(req.query, true);
    return page(await s.dashboard.listDeliveries(q), q.limit, dashboardDeliveryView);
  };
}

/** `GET /admin/v1/deliveries/:id`. */
export function getDelivery(s: Services) {
  return async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const d = await s.dashboard.getDelivery(req.params.id);
    if (!d) throw new NotFoundError('delivery');
    return deliveryDetail(s.store, d);
  };
}

/** The admin API's check, for routes registered outside its plugin. */
export function adminAuth(s: Services) {
  return async (req: FastifyRequest) => {
    const token = bearer(req);
    if (!token) throw new AuthError('an Authorization: Bearer header with the admin token is required');
    if (!safeEqual(token, s.config.adminToken)) throw new AuthError('the admin token is not valid');
  };
}

/** Subscriptions examined per read when a health state filters the list. */
const SCAN = 200;

export function operatorRoutes(s: Services, o: { stream: AttemptStream; links: PortalLinks }) {
  const subscription = async (id: string): Promise<SubscriptionWithTenant> => {
    const sub = await s.dashboard.getSubscription(id);
    if (!sub) throw new NotFoundError('subscription');
    return sub;
  };
  const summaryOf = async (sub: SubscriptionWithTenant) => (await summaries(s.dashboard, [sub]))[0]!;

  return async function (app: FastifyInstance): Promise<void> {
    app.setErrorHandler(errorHandler(nativeError));
    app.addHook('onRequest', adminAuth(s));

    app.get('/subscriptions', {
      schema: route('native', {
        summary: 'Subscriptions of every tenant and dialect with their health, newest first',
        description: 'Health is from the subscription\'s own state and its attempts of the last hour. `status` filters by health state.',
        tags: TAGS,
        querystring: obj({
          tenant_id: str({ description: 'only this tenant\'s' }),
          status: str({ enum: HEALTH_STATES, description: 'only those in this health state' }),
          dialect: str({ enum: DIALECTS }),
          limit: int({ min: 1, max: 500, default: 50 }),
          cursor: str({ description: 'the next_cursor of the page before' }),
        }, { open: true }),
        response: { 200: pageOf(summarySchema) },
      }),
    }, async (req) => {
      const q = (req.query ?? {}) as Obj;
      const state = queryString(q, 'status');
      if (state !== undefined && !HEALTH_STATES.includes(state as HealthState)) throw new ValidationError('status', `must be one of ${HEALTH_STATES.join(', ')}`);
      const dialect = queryString(q, 'dialect');
      if (dialect !== undefined && !DIALECTS.includes(dialect as Dialect)) throw new ValidationError('dialect', `must be one of ${DIALECTS.join(', ')}`);
      const limit = queryInt(q, 'limit', 50, 1, 500);
      const base = { tenantId: queryString(q, 'tenant_id') as TenantId | undefined, dialect: dialect as Dialect | undefined };
      let before = queryString(q, 'cursor');
      const out: Awaited<ReturnType<typeof summaries>> = [];
      // Health is not a column: with a state asked for, read on until the page is full or none are left.
      for (;;) {
        const subs = await s.dashboard.listSubscriptions({ ...base, before, limit: state ? SCAN : limit });
        for (const x of await summaries(s.dashboard, subs)) {
          if (!state || x.health.state === state) out.push(x);
          if (out.length === limit) break;
        }
        if (!state || out.length === limit || subs.length < SCAN) break;
        before = subs.at(-1)!.id;
      }
      return { data: out, next_cursor: out.length === limit ? out.at(-1)!.id : null };
    });

    const toggle = (paused: boolean) => async (req: FastifyRequest<{ Params: { id: string } }>) => {
      const sub = await subscription(req.params.id);
      const patch: SubscriptionPatch = { paused };
      // As the native and Paycor-style APIs do: resuming turns a subscription disabled by 410 Gone back on.
      if (!paused && sub.status === 'disabled' && sub.dialect !== 'gusto') patch.status = 'active';
      // A Gusto-style subscription taken out of service was verified before: the operator vouches for it again.
      if (!paused && sub.dialect === 'gusto' && sub.status === OUT_OF_SERVICE.gusto.status) Object.assign(patch, { status: 'verified', enabled: true });
      const updated = await s.store.updateSubscription(sub.tenantId, sub.id as SubscriptionId, patch);
      if (!updated) throw new NotFoundError('subscription');
      if (!paused) s.wake();
      return summaryOf({ ...sub, ...updated });
    };
    const toggleSchema = (summary: string) => ({
      schema: route('native', { summary, tags: TAGS, params: idParams(), response: { 200: summarySchema } }),
    });
    app.post<{ Params: { id: string } }>('/subscriptions/:id/pause', toggleSchema('Pause a subscription: its deliveries are made and held'), toggle(true));
    app.post<{ Params: { id: string } }>('/subscriptions/:id/resume', toggleSchema('Resume a subscription: what it held becomes due now'), toggle(false));

    app.post('/portal-links', {
      schema: route('native', {
        summary: 'A signed, short-lived link to the subscriber portal for one tenant',
        description: 'The token travels in the URL fragment, so it never reaches a server log. It cannot be revoked before it expires, except by deleting the tenant.',
        tags: TAGS,
        body: obj({
          tenant_id: str({ min: 1, max: 64 }),
          ttl_seconds: int({ min: 1, max: s.config.portalLinkMaxTtlSeconds, description: `lifetime (${s.config.portalLinkTtlSeconds} s unless given)` }),
        }, { required: ['tenant_id'] }),
        response: { 201: obj({ token: str(), url: str({ format: 'uri' }), expires_at: isoTime() }, { required: ['token', 'url', 'expires_at'] }) },
      }),
    }, async (req, reply) => {
      const b = objectBody(req.body);
      onlyKeys(b, ['tenant_id', 'ttl_seconds']);
      const tenantId = reqString(b, 'tenant_id', { max: 64 });
      const ttl = b.ttl_seconds ?? s.config.portalLinkTtlSeconds;
      if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > s.config.portalLinkMaxTtlSeconds) {
        throw new ValidationError('ttl_seconds', `must be an integer from 1 to ${s.config.portalLinkMaxTtlSeconds}`);
      }
      const tenant = await s.store.getTenant(tenantId);
      if (!tenant) throw new UnprocessableError('tenant_id', `tenant ${tenantId} does not exist`);
      const { token, expiresAt } = o.links.issue(tenant.id, ttl);
      const base = s.config.publicUrl ?? `${req.protocol}://${req.host}`;
      return reply.status(201).send({ token, url: `${base}/dashboard/#portal=${token}`, expires_at: new Date(expiresAt).toISOString() });
    });

    app.get('/stream', {
      // A HEAD would open the stream and never answer (its head waits for a body that does not come).
      exposeHeadRoute: false,
      schema: route('native', {
        summary: 'Live attempts of every tenant, as Server-Sent Events',
        tags: TAGS,
        produces: ['text/event-stream'],
        response: { 200: streamResponse, 503: unavailableSchema },
      }),
    }, (req, reply) => o.stream.open(req, reply, null));
  };
}
