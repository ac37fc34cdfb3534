// Bulk recovery over HTTP: the operator's routes under /admin/v1 (any tenant, one
// subscription or a whole tenant) and the tenant's own under /api/v1 (its endpoints, or all
// of its subscriptions). Both create the same job (src/store/queries/recoveries.ts), which
// a runner in some Herald process carries out (src/dispatch/recoveryRunner.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConflictError, NotFoundError, UnprocessableError, ValidationError } from '../domain/errors.ts';
import { isUuid, type SubscriptionId, type TenantId } from '../domain/ids.ts';
import type { Tenant } from '../domain/model.ts';
import { ERROR_KINDS, type ErrorKind } from '../domain/states.ts';
import { SqlStore } from '../store/sqlStore.ts';
import { cancelRecovery, createRecovery, getRecovery, listRecoveries, RECOVERY_STATES, type NewRecovery, type Recovery } from '../store/queries/recoveries.ts';
import { apiTokenAuth } from './apiTokenAuth.ts';
import { errorHandler, nativeError } from './errors.ts';
import { adminAuth } from './operator.ts';
import { idParams, int, isoTime, nullable, obj, pageOf, pageQuery, route, str, type JsonSchema } from './schemas.ts';
import type { Services } from './services.ts';
import { objectBody, onlyKeys, optString, queryInt, queryString, type Obj } from './validate.ts';

const TAGS = ['recovery'];
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const recoveryView = (r: Recovery) => ({
  id: r.id, state: r.state, tenant_id: r.tenantId, subscription_id: r.subscriptionId,
  since: iso(r.since), until: iso(r.until), status_code: r.statusCode, error_kind: r.errorKind,
  total: r.total, done: r.done, skipped: r.skipped,
  created_at: iso(r.createdAt), updated_at: iso(r.updatedAt), finished_at: iso(r.finishedAt),
});

const recoverySchema = obj({
  id: str({ format: 'uuid' }),
  state: str({ enum: RECOVERY_STATES, description: 'running until every matching delivery has been looked at; done; or cancelled' }),
  tenant_id: str(),
  subscription_id: { type: ['string', 'null'], description: 'null: every subscription of the tenant' },
  since: isoTime('deliveries created at or after this time'),
  until: isoTime('and before this one'),
  status_code: { type: ['integer', 'null'] },
  error_kind: { type: ['string', 'null'] },
  total: int({ min: 0, description: 'failed deliveries that matched when the job was made' }),
  done: int({ min: 0, description: 'sent again so far (due now, or held while their subscription is paused)' }),
  skipped: int({ min: 0, description: 'matched, but their subscription is deleted or not enabled' }),
  created_at: isoTime(),
  updated_at: isoTime(),
  finished_at: isoTime(),
}, { required: ['id', 'state', 'total', 'done', 'skipped'] });

const filterFields: Record<string, JsonSchema> = {
  since: str({ format: 'date-time', description: 'ISO-8601: deliveries created at or after this time' }),
  until: nullable(str({ format: 'date-time', description: 'ISO-8601: and before this time (default: now)' })),
  status_code: nullable(int({ min: 100, max: 599, description: 'only those whose last attempt got this HTTP status' })),
  error_kind: nullable(str({ enum: ERROR_KINDS, description: 'only those whose last attempt failed this way' })),
};

const DESCRIPTION = 'Sends every failed delivery in the range again, at most HERALD_RECOVERY_RATE_PER_SECOND a second, as a job that survives restarts. '
  + 'A delivery sent again gets one more attempt. Deliveries whose subscription is paused are held for it; a deleted or unverified one is skipped.';

function time(o: Obj, key: string): number | undefined {
  const v = optString(o, key, { max: 64 });
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(ms)) throw new ValidationError(key, 'must be an ISO-8601 date-time');
  return ms;
}

/** The range and filters every creation takes; `now` is the default end. */
function parseFilters(o: Obj, now: number): Pick<NewRecovery, 'since' | 'until' | 'statusCode' | 'errorKind'> {
  const since = time(o, 'since');
  if (since === undefined) throw new ValidationError('since', 'is required');
  const until = time(o, 'until') ?? now;
  if (until <= since) throw new ValidationError('until', 'must be after since');
  const code = o.status_code;
  if (code !== undefined && code !== null && (typeof code !== 'number' || !Number.isInteger(code) || code < 100 || code > 599)) {
    throw new ValidationError('status_code', 'must be an integer from 100 to 599');
  }
  const kind = optString(o, 'error_kind', { max: 64 });
  if (kind !== undefined && !ERROR_KINDS.includes(kind as ErrorKind)) throw new ValidationError('error_kind', `must be one of ${ERROR_KINDS.join(', ')}`);
  return { since, until, statusCode: (code as number | null | undefined) ?? null, errorKind: (kind as ErrorKind | undefined) ?? null };
}

function sqlStore(s: Services): SqlStore {
  if (!(s.store instanceof SqlStore)) throw new Error('bulk recovery needs the SQL store');
  return s.store;
}

const now = (store: SqlStore) => store.clock.now();

/** `GET` pages of jobs, newest first. */
async function listed(store: SqlStore, q: Obj, tenantId: TenantId | undefined) {
  const limit = queryInt(q, 'limit', 50, 1, 500);
  const items = await listRecoveries(store.db, { tenantId, before: queryString(q, 'cursor'), limit });
  return { data: items.map(recoveryView), next_cursor: items.length === limit ? items.at(-1)!.id : null };
}

/** The operator's routes, under /admin/v1. */
export function adminRecoveryRoutes(s: Services) {
  return async function (app: FastifyInstance): Promise<void> {
    const store = sqlStore(s);
    app.setErrorHandler(errorHandler(nativeError));
    app.addHook('onRequest', adminAuth(s));

    app.post('/recoveries', {
      schema: route('native', {
        summary: 'Send again the failed deliveries of a subscription, or of a whole tenant, in a time range',
        description: DESCRIPTION + ' Exactly one of subscription_id and tenant_id.',
        tags: TAGS,
        body: obj({ subscription_id: str({ min: 1, max: 64 }), tenant_id: str({ min: 1, max: 64 }), ...filterFields }, { required: ['since'] }),
        response: { 202: recoverySchema },
      }),
    }, async (req, reply) => {
      const o = objectBody(req.body);
      onlyKeys(o, ['subscription_id', 'tenant_id', 'since', 'until', 'status_code', 'error_kind']);
      const subId = optString(o, 'subscription_id', { min: 1, max: 64 });
      const tenantId = optString(o, 'tenant_id', { min: 1, max: 64 });
      if ((subId === undefined) === (tenantId === undefined)) throw new ValidationError(subId ? 'tenant_id' : 'subscription_id', subId ? 'must not be given with subscription_id' : 'or tenant_id is required');
      const f = parseFilters(o, now(store));
      let job: NewRecovery;
      if (subId !== undefined) {
        const sub = isUuid(subId) ? await s.dashboard.getSubscription(subId) : null;
        if (!sub) throw new UnprocessableError('subscription_id', `subscription ${subId} does not exist`);
        job = { tenantId: sub.tenantId, subscriptionId: sub.id, ...f };
      } else {
        const t = await s.store.getTenant(tenantId!);
        if (!t) throw new UnprocessableError('tenant_id', `tenant ${tenantId} does not exist`);
        job = { tenantId: t.id, subscriptionId: null, ...f };
      }
      return reply.status(202).send(recoveryView(await createRecovery(store, job, now(store))));
    });

    app.get('/recoveries', {
      schema: route('native', {
        summary: 'Bulk recovery jobs, newest first',
        tags: TAGS,
        querystring: pageQuery({ tenant_id: str({ description: 'only this tenant\'s' }) }),
        response: { 200: pageOf(recoverySchema) },
      }),
    }, async (req) => {
      const q = (req.query ?? {}) as Obj;
      return listed(store, q, queryString(q, 'tenant_id') as TenantId | undefined);
    });

    app.get<{ Params: { id: string } }>('/recoveries/:id', {
      schema: route('native', { summary: 'A bulk recovery job and its progress', tags: TAGS, params: idParams(), response: { 200: recoverySchema } }),
    }, async (req) => {
      const r = await getRecovery(store.db, req.params.id);
      if (!r) throw new NotFoundError('recovery');
      return recoveryView(r);
    });

    app.post<{ Params: { id: string } }>('/recoveries/:id/cancel', {
      schema: route('native', {
        summary: 'Stop a running bulk recovery job; what it already sent again stays queued',
        description: '409 when it is not running.',
        tags: TAGS,
        params: idParams(),
        response: { 200: recoverySchema },
      }),
    }, async (req) => cancelled(store, req.params.id));
  };
}

async function cancelled(store: SqlStore, id: string, tenantId?: TenantId) {
  const r = await getRecovery(store.db, id, tenantId);
  if (!r) throw new NotFoundError('recovery');
  if (!(await cancelRecovery(store.db, id, now(store), tenantId))) throw new ConflictError(`the recovery is ${r.state}, not running`);
  return recoveryView((await getRecovery(store.db, id, tenantId))!);
}

const tenants = new WeakMap<FastifyRequest, Tenant>();

/** The tenant's own routes, under /api/v1 with its api_token. */
export function nativeRecoveryRoutes(s: Services) {
  return async function (app: FastifyInstance): Promise<void> {
    const store = sqlStore(s);
    app.setErrorHandler(errorHandler(nativeError));
    app.addHook('onRequest', apiTokenAuth(s, tenants));
    const tenantOf = (req: FastifyRequest) => tenants.get(req)!;

    app.post('/recoveries', {
      schema: route('native', {
        summary: 'Send again the failed deliveries of one of your endpoints, or of all your subscriptions, in a time range',
        description: DESCRIPTION + ' Without endpoint_id, every subscription of yours, in any dialect.',
        tags: TAGS,
        body: obj({ endpoint_id: str({ min: 1, max: 64 }), ...filterFields }, { required: ['since'] }),
        response: { 202: recoverySchema },
      }),
    }, async (req, reply) => {
      const o = objectBody(req.body);
      onlyKeys(o, ['endpoint_id', 'since', 'until', 'status_code', 'error_kind']);
      const endpointId = optString(o, 'endpoint_id', { min: 1, max: 64 });
      const f = parseFilters(o, now(store));
      const t = tenantOf(req);
      let subscriptionId: SubscriptionId | null = null;
      if (endpointId !== undefined) {
        const sub = isUuid(endpointId) ? await s.store.getSubscription(t.id, endpointId, 'native') : null;
        if (!sub) throw new UnprocessableError('endpoint_id', `endpoint ${endpointId} does not exist`);
        subscriptionId = sub.id;
      }
      return reply.status(202).send(recoveryView(await createRecovery(store, { tenantId: t.id, subscriptionId, ...f }, now(store))));
    });

    app.get('/recoveries', {
      schema: route('native', { summary: 'Your bulk recovery jobs, newest first', tags: TAGS, querystring: pageQuery(), response: { 200: pageOf(recoverySchema) } }),
    }, async (req) => listed(store, (req.query ?? {}) as Obj, tenantOf(req).id));

    app.get<{ Params: { id: string } }>('/recoveries/:id', {
      schema: route('native', { summary: 'One of your bulk recovery jobs and its progress', tags: TAGS, params: idParams(), response: { 200: recoverySchema } }),
    }, async (req) => {
      const r = await getRecovery(store.db, req.params.id, tenantOf(req).id);
      if (!r) throw new NotFoundError('recovery');
      return recoveryView(r);
    });

    app.post<{ Params: { id: string } }>('/recoveries/:id/cancel', {
      schema: route('native', { summary: 'Stop one of your running bulk recovery jobs', description: '409 when it is not running.', tags: TAGS, params: idParams(), response: { 200: recoverySchema } }),
    }, async (req) => cancelled(store, req.params.id, tenantOf(req).id));
  };
}
