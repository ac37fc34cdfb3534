// The subscriber portal's API, under /portal/v1: a tenant sees and acts on its own
// subscriptions and deliveries only, in every dialect. It signs in with its api_token or
// with a portal link the operator minted; anything of another tenant is a 404, exactly as
// something that does not exist.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError, ConflictError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { isUuid, type DeliveryId, type SubscriptionId } from '../domain/ids.ts';
import type { Tenant } from '../domain/model.ts';
import { NOTICES } from '../domain/notices.ts';
import { rotateStandardSecret } from '../dialects/native/rotate.ts';
import { hashToken } from '../secrets.ts';
import { RETRY_FAILED_MAX, type DeliveryWithType, type SubscriptionWithTenant } from '../store/queries/dashboard.ts';
import type { AttemptStream } from './attemptStream.ts';
import {
  dashboardDeliveryDetailSchema, dashboardDeliverySchema, dashboardDeliveryView, deliveriesQuerySchema, deliveryDetail, parseDeliveryQuery,
  streamResponse, summaries, summarySchema, unavailableSchema,
} from './dashboardViews.ts';
import { bearer, errorHandler, nativeError } from './errors.ts';
import { PORTAL_TOKEN_PREFIX, type PortalLinks } from './portalLinks.ts';
import { deliverySchema, idParams, int, isoTime, listOf, obj, pageOf, route, str } from './schemas.ts';
import type { Services } from './services.ts';
import { objectBody, onlyKeys, optString } from './validate.ts';
import { deliveryView, page } from './views.ts';

const TAGS = ['portal'];

interface Viewer {
  tenant: Tenant;
  via: 'api_token' | 'portal_link';
  expiresAt: number | null;
}

const viewers = new WeakMap<FastifyRequest, Viewer>();

/**
 * Why a dialect's secret cannot be rotated from the portal: its receivers check one secret,
 * so a new one would fail every delivery until the receiver is changed, with no overlap.
 */
const NO_ROTATION: Record<string, string> = {
  paycor: 'a Paycor-style receiver checks one secret, so a new one cannot overlap the old; set a new Secret through PUT /eventsubscriptions/user/registrations/{id}',
  gusto: 'a Gusto-style receiver is keyed by its one verification token; create a new webhook subscription for a new token',
};

export function portalRoutes(s: Services, o: { stream: AttemptStream; links: PortalLinks }) {
  const viewer = (req: FastifyRequest) => viewers.get(req)!;
  const tenantId = (req: FastifyRequest) => viewer(req).tenant.id;

  const ownSubscription = async (req: FastifyRequest, id: string): Promise<SubscriptionWithTenant> => {
    const sub = isUuid(id) ? await s.dashboard.getSubscription(id.toLowerCase(), tenantId(req)) : null;
    if (!sub) throw new NotFoundError('subscription');
    return sub;
  };

  const ownDelivery = async (req: FastifyRequest, id: string): Promise<DeliveryWithType> => {
    const d = isUuid(id) ? await s.dashboard.getDelivery(id.toLowerCase()) : null;
    if (!d || d.tenantId !== tenantId(req)) throw new NotFoundError('delivery');
    return d;
  };

  return async function (app: FastifyInstance): Promise<void> {
    app.setErrorHandler(errorHandler(nativeError));
    app.addHook('onRequest', async (req) => {
      const token = bearer(req);
      if (!token) throw new AuthError('an Authorization: Bearer header with the api_token or a portal link token is required');
      if (token.startsWith(PORTAL_TOKEN_PREFIX)) {
        const v = o.links.verify(token);
        if ('error' in v) throw new AuthError(v.error);
        const tenant = await s.store.getTenant(v.tenantId);
        if (!tenant) throw new AuthError('the portal link is not valid');
        viewers.set(req, { tenant, via: 'portal_link', expiresAt: v.expiresAt });
        return;
      }
      const tenant = await s.store.tenantByApiTokenHash(hashToken(token));
      if (!tenant) throw new AuthError('the api_token is not valid');
      viewers.set(req, { tenant, via: 'api_token', expiresAt: null });
    });

    app.get('/me', {
      schema: route('native', {
        summary: 'Who the portal is signed in as, and until when',
        tags: TAGS,
        response: {
          200: obj({
            tenant: obj({ id: str(), name: str(), number: int() }, { required: ['id', 'name', 'number'] }),
            via: str({ enum: ['api_token', 'portal_link'] }),
            expires_at: isoTime('when the portal link runs out; null with an api_token'),
          }, { required: ['tenant', 'via', 'expires_at'] }),
        },
      }),
    }, async (req) => {
      const v = viewer(req);
      return { tenant: { id: v.tenant.id, name: v.tenant.name, number: v.tenant.number }, via: v.via, expires_at: v.expiresAt === null ? null : new Date(v.expiresAt).toISOString() };
    });

    app.get('/subscriptions', {
      schema: route('native', { summary: 'The tenant\'s subscriptions of every dialect, with their health', tags: TAGS, response: { 200: listOf(summarySchema) } }),
    }, async (req) => ({ data: await summaries(s.dashboard, await s.dashboard.listSubscriptions({ tenantId: tenantId(req), limit: 1000 })) }));

    app.get('/deliveries', {
      schema: route('native', {
        summary: 'The tenant\'s deliveries, newest first, by subscription, status, event type and time',
        tags: TAGS,
        querystring: deliveriesQuerySchema(false),
        response: { 200: pageOf(dashboardDeliverySchema) },
      }),
    }, async (req) => {
      const q = parseDeliveryQuery(req.query, false);
      if (q.subscriptionId !== undefined) await ownSubscription(req, q.subscriptionId);
      const items = await s.dashboard.listDeliveries({ ...q, tenantId: tenantId(req) });
      return page(items, q.limit, dashboardDeliveryView);
    });

    app.get<{ Params: { id: string } }>('/deliveries/:id', {
      schema: route('native', { summary: 'One of the tenant\'s deliveries with each attempt', tags: TAGS, params: idParams(), response: { 200: dashboardDeliveryDetailSchema } }),
    }, async (req) => deliveryDetail(s.store, await ownDelivery(req, req.params.id)));

    app.post<{ Params: { id: string } }>('/deliveries/:id/retry', {
      schema: route('native', {
        summary: 'Send one of the tenant\'s deliveries again now',
        description: '409 while it is in flight, or while its subscription is paused or deleted.',
        tags: TAGS,
        params: idParams(),
        response: { 202: deliverySchema },
      }),
    }, async (req, reply) => {
      const d = await ownDelivery(req, req.params.id);
      const r = await s.store.retryNow(d.id);
      if (r === null) throw new NotFoundError('delivery');
      if (r === 'busy') throw new ConflictError('the delivery is in flight, or its subscription is paused or deleted');
      s.wake();
      return reply.status(202).send(deliveryView(r));
    });

    app.post('/deliveries/retry-failed', {
      schema: route('native', {
        summary: `Send the tenant's failed deliveries again now, at most ${RETRY_FAILED_MAX} a call, oldest first`,
        description: `Those of paused or deleted subscriptions are left out. With \`retried\` at ${RETRY_FAILED_MAX}, call again for the rest.`,
        tags: TAGS,
        body: obj({ subscription_id: str({ format: 'uuid', description: 'only this subscription\'s' }) }),
        response: { 202: obj({ retried: int({ min: 0, max: RETRY_FAILED_MAX }) }, { required: ['retried'] }) },
      }),
    }, async (req, reply) => {
      // An empty body is fine: every failed delivery of the tenant.
      const b = req.body === undefined || req.body === null ? {} : objectBody(req.body);
      onlyKeys(b, ['subscription_id']);
      const sid = optString(b, 'subscription_id', { min: 1, max: 200 });
      if (sid !== undefined && !isUuid(sid)) throw new ValidationError('subscription_id', 'must be a UUID');
      if (sid !== undefined) await ownSubscription(req, sid);
      const retried = await s.dashboard.retryFailed(tenantId(req), sid?.toLowerCase() as SubscriptionId | undefined);
      if (retried > 0) s.wake();
      return reply.status(202).send({ retried });
    });

    app.post<{ Params: { id: string } }>('/subscriptions/:id/rotate-secret', {
      schema: route('native', {
        summary: 'A new signing secret for a native subscription, shown once; the old one keeps signing for the rotation grace',
        description: '409 for Paycor-style and Gusto-style subscriptions: their receivers check one secret, so there is no overlap to rotate through.',
        tags: TAGS,
        params: idParams(),
        response: { 200: obj({ secret: str(), previous_secrets_valid_until: isoTime('null when no older secret is still valid') }, { required: ['secret', 'previous_secrets_valid_until'] }) },
      }),
    }, async (req) => {
      const sub = await ownSubscription(req, req.params.id);
      const why = NO_ROTATION[sub.dialect];
      if (why) throw new ConflictError(`this subscription's secret cannot be rotated here: ${why}`);
      const r = await rotateStandardSecret(s, sub);
      if (!r) throw new NotFoundError('subscription');
      return { secret: r.secret, previous_secrets_valid_until: r.previousValidUntil === null ? null : new Date(r.previousValidUntil).toISOString() };
    });

    app.post<{ Params: { id: string } }>('/subscriptions/:id/test', {
      schema: route('native', {
        summary: 'Send a test event to the subscription, signed and recorded like any delivery',
        description: 'The event is of type `$herald.test`, which no one can publish. 409 while the subscription is paused.',
        tags: TAGS,
        params: idParams(),
        response: { 202: obj({ delivery_id: str({ format: 'uuid' }) }, { required: ['delivery_id'] }) },
      }),
    }, async (req, reply) => {
      const sub = await ownSubscription(req, req.params.id);
      if (sub.paused) throw new ConflictError('the subscription is paused: resume it to send a test event');
      const id = await s.dashboard.queueTest(sub.tenantId, sub.id, NOTICES.test, { message: 'A test event sent from the Herald portal', subscription_id: sub.id });
      s.wake();
      return reply.status(202).send({ delivery_id: id as DeliveryId });
    });

    app.get('/stream', {
      // A HEAD would open the stream and never answer (its head waits for a body that does not come).
      exposeHeadRoute: false,
      schema: route('native', {
        summary: 'Live attempts of the tenant\'s deliveries, as Server-Sent Events',
        tags: TAGS,
        produces: ['text/event-stream'],
        response: { 200: streamResponse, 503: unavailableSchema },
      }),
    }, (req, reply) => o.stream.open(req, reply, tenantId(req), viewer(req).expiresAt));
  };
}
