import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuthError, NotFoundError, ValidationError } from '../../domain/errors.ts';
import { typeName, type EventType } from '../../domain/eventTypes.ts';
import { uuidv7, type EventId, type SubscriptionId, type TenantId } from '../../domain/ids.ts';
import type { Subscription, Tenant } from '../../domain/model.ts';
import { errorHandler, toFailure, type ErrorRenderer } from '../../http/errors.ts';
import type { Services } from '../../http/services.ts';
import { objectBody, optBool, optString, optStringArray, optStringMap, reqString, type Obj } from '../../http/validate.ts';
import { hashToken, safeEqual } from '../../secrets.ts';
import { asciiJson, paycorId, paycorNotification, paycorSignature } from './envelope.ts';
import { ASCII_SECRET, HEADER_NAME, paycorSchemas } from './schemas.ts';
import { TokenIssuer } from './token.ts';
import { checkFilterCount, checkHeaderCount, withSubscriptionRoom } from '../../http/limits.ts';

const KEY_HEADER = 'ocp-apim-subscription-key';
const TITLES: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type', 500: 'Internal Server Error', 503: 'Service Unavailable', 507: 'Insufficient Storage' };
/** Headers a registration may not set: they would break the request or impersonate Herald's own. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'proxy-authorization', 'user-agent']);

/** Paycor's error model; everything Herald refuses as unprocessable is a 400 here. */
export const paycorError: ErrorRenderer = (f, req) => {
  const status = f.status === 422 ? 400 : f.status;
  return {
    CorrelationId: req.id && /^[0-9a-f-]{36}$/.test(String(req.id)) ? req.id : randomUUID(),
    Title: TITLES[status] ?? 'Error',
    Detail: f.message,
    Source: f.field ? { [f.field]: f.message.startsWith(f.field + ' ') ? f.message.slice(f.field.length + 1) : f.message } : {},
  };
};

const paycorErrors = (req: FastifyRequest, reply: FastifyReply, err: unknown) => {
  const handle = errorHandler(paycorError);
  // A 422 from shared code (a limit, say) is a 400 here in its status too, not only in its Title.
  return handle(err instanceof ValidationError && err.status === 422 ? new PaycorValidation(err.field, err.message) : err, req, reply);
};

/** A 422 is rendered as 400 in this dialect; the status travels with the error. */
class PaycorValidation extends ValidationError {
  constructor(field: string, message: string) {
    super(field, message, 400);
  }
}

export const registrationView = (s: Subscription) => ({
  Id: s.id,
  WebHookUri: s.url,
  Description: s.description,
  IsPaused: s.paused,
  Filters: s.filters.map((f) => (f.startsWith('*.') ? f.slice(2) : f)),
  Headers: s.headers,
  Properties: s.properties,
});

/** `Add` matches that event on every entity; `Employee.Add` just that one; `*` everything. */
export function normaliseFilters(names: string[], catalog: EventType[]): string[] {
  if (names.includes('*')) return [];
  const events = new Set(catalog.map((t) => t.event));
  const qualified = new Set(catalog.map((t) => typeName(t.entity, t.event)));
  const unknown = names.filter((n) => !(n.includes('.') ? qualified.has(n) : events.has(n)));
  if (unknown.length) {
    const valid = [...new Set([...catalog.map((t) => t.event), ...qualified])].sort();
    throw new PaycorValidation('Filters', `unknown event name(s): ${unknown.join(', ')}. Valid names: ${valid.join(', ')}`);
  }
  return [...new Set(names.map((n) => (n.includes('.') ? n : `*.${n}`)))];
}

function customHeaders(o: Obj, max: number): Record<string, string> | undefined {
  const h = optStringMap(o, 'Headers', { maxEntries: max, keyPattern: HEADER_NAME });
  if (!h) return undefined;
  for (const k of Object.keys(h)) {
    if (RESERVED_HEADERS.has(k.toLowerCase()) || k.toLowerCase().startsWith('webhook-')) throw new PaycorValidation(`Headers.${k}`, 'is set by Herald and cannot be changed');
    if (/[\r\n]/.test(h[k]!)) throw new PaycorValidation(`Headers.${k}`, 'must not contain line breaks');
  }
  return h;
}

const REGISTRATION_FIELDS = ['Id', 'WebHookUri', 'Secret', 'Description', 'IsPaused', 'Filters', 'Headers', 'Properties'];
const MOCK_FIELDS = ['ApplicationId', 'TenantId', 'EventType', 'NotificationURL', 'NotificationSecret', 'ItemId', 'LegalEntityId'];

/**
 * The body with its field names in the documented case. ASP.NET binds JSON names without
 * regard to case, so `webHookUri` and `WebhookUri` (as the guide itself spells it) are
 * the same field.
 */
export function canonicalFields(body: unknown, fields: string[]): Obj {
  const o = objectBody(body);
  const byLower = new Map(fields.map((f) => [f.toLowerCase(), f]));
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) {
    const name = byLower.get(k.toLowerCase()) ?? k;
    if (name in out) throw new PaycorValidation(name, 'is given more than once');
    out[name] = v;
  }
  return out;
}

const tenants = new WeakMap<FastifyRequest, Tenant>();

/** The Paycor-style dialect: OAuth token, registrations, catalog and mock events. */
export function paycorRoutes(s: Services) {
  const issuer = new TokenIssuer(s.config.secretKey, s.config.paycorTokenTtlSeconds);
  const sigHeader = s.config.paycorSignatureHeader.toLowerCase();

  const checkUri = async (field: string, url: string) => {
    const why = await s.guard.checkUrl(url);
    if (why) throw new PaycorValidation(field, why);
  };

  const subscriptionKeyTenant = async (req: FastifyRequest): Promise<Tenant> => {
    const key = req.headers[KEY_HEADER];
    if (typeof key !== 'string' || key.trim() === '') throw new AuthError('header is missing', 'Ocp-Apim-Subscription-Key');
    const t = await s.store.tenantBySubscriptionKeyHash(hashToken(key.trim()));
    if (!t) throw new AuthError('is not a valid subscription key', 'Ocp-Apim-Subscription-Key');
    return t;
  };

  const owned = async (req: FastifyRequest<{ Params: { id: string } }>): Promise<Subscription> => {
    const sub = await s.store.getSubscription(tenants.get(req)!.id, req.params.id, 'paycor');
    if (!sub) throw new NotFoundError('registration');
    return sub;
  };

  /** The registration fields shared by POST and PUT, validated with Paycor's names. */
  const parseRegistration = async (o: Obj) => {
    const url = reqString(o, 'WebHookUri', { max: 2000 });
    await checkUri('WebHookUri', url);
    const secret = optString(o, 'Secret', { min: 32, max: 64, pattern: ASCII_SECRET, patternMessage: 'must be printable ASCII characters' });
    checkFilterCount(s, o.Filters, 'Filters');
    checkHeaderCount(s, o.Headers, 'Headers');
    const filters = normaliseFilters(optStringArray(o, 'Filters', { maxItems: s.config.maxFiltersPerSubscription }) ?? [], await s.store.listEventTypes());
    return {
      url,
      secret,
      filters,
      description: optString(o, 'Description', { max: 1000 }) ?? '',
      paused: optBool(o, 'IsPaused'),
      headers: customHeaders(o, s.config.maxHeadersPerSubscription) ?? {},
      properties: optStringMap(o, 'Properties', { maxEntries: 50 }) ?? {},
    };
  };

  const tokenRoute = async (app: FastifyInstance): Promise<void> => {
    app.setErrorHandler((err, req, reply) => {
      // The token request's schema failures are OAuth errors, in the shape its other refusals have.
      if (!(err instanceof ValidationError)) return paycorErrors(req, reply, err);
      const f = toFailure(err);
      return reply.status(400).send({ error: 'invalid_request', error_description: f.message, ...(paycorError({ ...f, status: 400 }, req) as Obj) });
    });
    app.post('/Accounts/v2/Common/Token', { schema: paycorSchemas.token }, async (req, reply) => {
      const oauth = (status: number, error: string, description: string, field?: string) => {
        const base = paycorError({ status, code: error, message: description, field }, req) as Obj;
        return reply.status(status).send({ error, error_description: description, ...base });
      };
      // Only a refused key is an OAuth error; a store that cannot answer is a 503 like anywhere else.
      const tenant = await subscriptionKeyTenant(req).catch((e: unknown) => { if (e instanceof AuthError) return e; throw e; });
      if (tenant instanceof Error) return oauth(401, 'invalid_client', `Ocp-Apim-Subscription-Key ${tenant.message}`, 'Ocp-Apim-Subscription-Key');
      const o = (req.body && typeof req.body === 'object' ? req.body : {}) as Obj;
      let clientId = typeof o.client_id === 'string' ? o.client_id : undefined;
      let clientSecret = typeof o.client_secret === 'string' ? o.client_secret : undefined;
      const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      if (basic) {
        const [id, ...rest] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':');
        try {
          clientId = decodeURIComponent(id ?? '');
          clientSecret = decodeURIComponent(rest.join(':'));
        } catch {
          // A stray % in the Basic credentials was a 500 before (URIError).
          return oauth(400, 'invalid_request', 'the Basic credentials are not validly percent-encoded', 'Authorization');
        }
      }
      if (o.grant_type !== 'client_credentials') return oauth(400, 'unsupported_grant_type', 'grant_type must be client_credentials', 'grant_type');
      if (!clientId) return oauth(400, 'invalid_request', 'client_id is required', 'client_id');
      if (!clientSecret) return oauth(400, 'invalid_request', 'client_secret is required', 'client_secret');
      const creds = await s.store.tenantCredentialsByClientId(clientId);
      const secretOk = creds !== null && safeEqual(hashToken(clientSecret), creds.clientSecretHash);
      if (!creds || !secretOk) return oauth(401, 'invalid_client', 'the client_id or client_secret is not valid', 'client_secret');
      if (creds.id !== tenant.id) return oauth(401, 'invalid_client', 'the subscription key belongs to a different client', 'Ocp-Apim-Subscription-Key');
      const { token, expiresIn } = issuer.issue(tenant.id);
      reply.header('cache-control', 'no-store');
      return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, ...(typeof o.scope === 'string' && o.scope ? { scope: o.scope } : {}) };
    });
  };

  const api = async (app: FastifyInstance): Promise<void> => {
    app.setErrorHandler((err, req, reply) => paycorErrors(req, reply, err));
    app.addHook('onRequest', async (req) => {
      const byKey = await subscriptionKeyTenant(req);
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (!m) throw new AuthError('header with a Bearer access token is missing (get one from POST /Accounts/v2/Common/Token)', 'Authorization');
      const v = issuer.verify(m[1]!);
      if ('error' in v) throw new AuthError(v.error, 'Authorization');
      if (v.tenantId !== byKey.id) throw new AuthError('holds an access token of a different client than the subscription key', 'Authorization');
      tenants.set(req, byKey);
    });
    // ASP.NET binds JSON names in any letter case: the body's names take the schema's case before the schema checks them.
    app.addHook('preValidation', async (req) => {
      const fields = (req.routeOptions.schema?.body as { properties?: Obj } | undefined)?.properties;
      if (fields && req.body !== null && typeof req.body === 'object' && !Array.isArray(req.body)) req.body = canonicalFields(req.body, Object.keys(fields));
    });

    app.get('/eventsubscriptions/support/v1/events', { schema: paycorSchemas.catalog }, async () =>
      (await s.store.listEventTypes()).map((t) => ({ Entity: t.entity, Event: t.event, Description: t.description })));

    app.post('/eventsubscriptions/user/registrations', { schema: paycorSchemas.createRegistration }, async (req, reply) => {
      const r = await parseRegistration(canonicalFields(req.body, REGISTRATION_FIELDS));
      const secret = r.secret ?? randomUUID();
      const sub = await withSubscriptionRoom(s, tenants.get(req)!.id, () => s.store.createSubscription({
        tenantId: tenants.get(req)!.id, dialect: 'paycor', url: r.url, description: r.description, filters: r.filters,
        // The seed: IsPaused "is defaulted to true".
        paused: r.paused ?? true, enabled: true, status: 'active',
        secrets: [{ enc: s.box.seal(secret), expiresAt: null }], headers: r.headers, properties: r.properties, ordering: s.config.paycorOrdering,
      }));
      return reply.status(201).send({ ...registrationView(sub), Secret: secret });
    });

    app.get('/eventsubscriptions/user/registrations', { schema: paycorSchemas.listRegistrations }, async (req) =>
      (await s.store.listSubscriptions(tenants.get(req)!.id, 'paycor')).map(registrationView));

    app.get<{ Params: { id: string } }>('/eventsubscriptions/user/registrations/:id', { schema: paycorSchemas.getRegistration }, async (req) => registrationView(await owned(req)));

    app.put<{ Params: { id: string } }>('/eventsubscriptions/user/registrations/:id', { schema: paycorSchemas.putRegistration }, async (req) => {
      const sub = await owned(req);
      const o = canonicalFields(req.body, REGISTRATION_FIELDS);
      const id = o.Id;
      if (id !== undefined && id !== null && String(id) !== sub.id) throw new PaycorValidation('Id', 'must match the id in the path');
      const r = await parseRegistration(o);
      const updated = await s.store.updateSubscription(sub.tenantId, sub.id as SubscriptionId, {
        url: r.url, description: r.description, filters: r.filters, headers: r.headers, properties: r.properties,
        // A missing IsPaused keeps the current state; a missing Secret keeps the current secret.
        ...(r.paused !== undefined ? { paused: r.paused, status: 'active' } : {}),
        ...(r.secret !== undefined ? { secrets: [{ enc: s.box.seal(r.secret), expiresAt: null }] } : {}),
      });
      if (!updated) throw new NotFoundError('registration');
      if (sub.paused && !updated.paused) s.wake();
      return registrationView(updated);
    });

    app.delete<{ Params: { id: string } }>('/eventsubscriptions/user/registrations/:id', { schema: paycorSchemas.deleteRegistration }, async (req, reply) => {
      const sub = await owned(req);
      await s.store.deleteSubscription(sub.tenantId, sub.id as SubscriptionId);
      return reply.status(204).send();
    });

    app.post('/v1/events/mockevent', { schema: paycorSchemas.mockEvent }, async (req, reply) => {
      const o = canonicalFields(req.body, MOCK_FIELDS);
      const eventType = reqString(o, 'EventType', { max: 130 });
      const known = (await s.store.listEventTypes()).find((t) => typeName(t.entity, t.event) === eventType);
      if (!known) throw new PaycorValidation('EventType', `${eventType} is not in the event catalog`);
      const url = reqString(o, 'NotificationURL', { max: 2000 });
      await checkUri('NotificationURL', url);
      const secret = reqString(o, 'NotificationSecret', { max: 256, pattern: ASCII_SECRET, patternMessage: 'must be printable ASCII characters' });
      const itemId = (typeof o.ItemId === 'number' ? String(o.ItemId) : optString(o, 'ItemId', { min: 1, max: 200 })) ?? randomUUID();
      const legal = typeof o.LegalEntityId === 'number' ? String(o.LegalEntityId) : optString(o, 'LegalEntityId', { min: 1, max: 200 }) ?? null;
      const tenant = tenants.get(req)!;
      const notification = paycorNotification({
        id: uuidv7() as EventId, tenantId: tenant.id as TenantId, entity: known.entity, event: known.event, entityId: itemId,
        entityUri: `v1/${known.entity.toLowerCase()}s/${itemId}`, parentType: null, parentId: legal, data: {},
        occurredAt: Date.now(), createdAt: Date.now(), idempotencyKey: null,
      }, { properties: {} }, tenant.number);
      notification.LegalEntityId = paycorId(legal);
      const body = asciiJson(notification);
      // A test notification is sent once, not retried; its outcome is logged.
      void s.sender.post(url, { 'content-type': 'application/json', 'user-agent': s.userAgent, [sigHeader]: paycorSignature(secret, body) }, body).then((r) => {
        req.log.info({ status: r.statusCode, error: r.error }, 'mock event sent');
      });
      return reply.status(201).send(notification);
    });
  };

  return async function (app: FastifyInstance): Promise<void> {
    await app.register(tokenRoute);
    await app.register(api);
  };
}
