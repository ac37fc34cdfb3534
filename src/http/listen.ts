import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { apiTokenAuth } from './apiTokenAuth.ts';
import { ConflictError, NotFoundError, UnprocessableError, ValidationError } from '../domain/errors.ts';
import { unknownFilters } from '../domain/eventTypes.ts';
import type { SubscriptionId } from '../domain/ids.ts';
import type { Subscription, Tenant } from '../domain/model.ts';
import type { ErrorKind } from '../domain/states.ts';
import { listenUrl, SESSION_RE, type ListenHub, type ListenRequest, type ListenStream } from '../dispatch/listenHub.ts';
import { newStandardSecret } from '../dialects/native/routes.ts';
import { errorHandler, nativeError } from './errors.ts';
import { int, noContent, nullable, obj, route, str } from './schemas.ts';
import type { Services } from './services.ts';
import { objectBody, onlyKeys, optString, queryString, type Obj } from './validate.ts';
import { checkFilterCount, withSubscriptionRoom } from './limits.ts';

const FILTER_RE = /^(\*|[A-Za-z][A-Za-z0-9_]{0,63})\.(\*|[A-Za-z][A-Za-z0-9_]{0,63})$/;
/** A comment line this often keeps proxies and the CLI from taking a quiet stream for a dead one. */
export const KEEP_ALIVE_MS = 15_000;
/** Error kinds the CLI may report for a local receiver that gave no answer. */
const LOCAL_ERROR_KINDS: readonly ErrorKind[] = ['connection', 'timeout', 'dns', 'tls'];

const SESSION_SCHEMA = str({ pattern: SESSION_RE, message: 'must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit', description: 'the listen session: one subscription per tenant and session name, kept between connections' });

const tenants = new WeakMap<FastifyRequest, Tenant>();

function parseEvents(s: Services, raw: string | undefined): string[] {
  if (raw === undefined) return [];
  const list = raw.split(',').map((f) => f.trim()).filter((f) => f !== '');
  checkFilterCount(s, list, 'events');
  list.forEach((f, i) => {
    if (!FILTER_RE.test(f)) throw new ValidationError(`events[${i}]`, 'must be Entity.Event (either side may be *)');
  });
  return list;
}

function parseSession(raw: string | undefined, field: string): string {
  const session = raw ?? 'default';
  if (!SESSION_RE.test(session)) throw new ValidationError(field, 'must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit');
  return session;
}

/**
 * `herald listen`'s side of Herald: a tenant opens an event stream, and Herald delivers that
 * tenant's events to it through a subscription of its own (URL `herald-listen://...`),
 * through the normal engine, so each forwarded delivery is recorded and retried like any.
 */
export function listenRoutes(s: Services) {
  const hub: ListenHub | undefined = s.listen;
  /** Connections of one session that are being set up, so two at once make one subscription. */
  const setups = new Map<string, Promise<unknown>>();
  /** Pauses written after a stream closed; stopping waits for them before the store closes. */
  const pausing = new Set<Promise<unknown>>();
  /** Each open stream's end: stopping waits for them, so their pauses are under way. */
  const open = new Set<Promise<void>>();

  const findOrCreate = async (tenant: Tenant, session: string, filters: string[]): Promise<Subscription> => {
    const url = listenUrl(tenant.id, session);
    const existing = (await s.store.listSubscriptions(tenant.id, 'native')).find((x) => x.url === url);
    if (existing) return existing;
    // Paused until its stream is attached, so nothing is sent to a stream not there yet.
    return withSubscriptionRoom(s, tenant.id, () => s.store.createSubscription({
      tenantId: tenant.id, dialect: 'native', url, description: `herald listen session ${session}`, filters,
      paused: true, enabled: true, status: 'active', secrets: [{ enc: s.box.seal(newStandardSecret()), expiresAt: null }],
      headers: {}, properties: {},
    }));
  };

  const pause = (req: FastifyRequest, tenant: Tenant, id: SubscriptionId, url: string) => {
    const p = s.store.updateSubscription(tenant.id, id, { paused: true }).then(async () => {
      // A new stream of the session attached while the pause was being written: it wins.
      if (hub?.has(url) && await s.store.updateSubscription(tenant.id, id, { paused: false })) s.wake();
    }).catch((err: unknown) => {
      req.log.warn({ err, subscription: id }, 'pausing a herald listen subscription failed; its deliveries will fail and be retried');
    });
    pausing.add(p);
    void p.finally(() => pausing.delete(p));
  };

  const openStream = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!hub) throw new ConflictError('herald listen is not available on this Herald process');
    if (!s.config.dispatch) throw new ConflictError('this Herald process does not deliver (HERALD_DISPATCH=off): connect herald listen to one that does');
    const q = (req.query ?? {}) as Obj;
    const session = parseSession(queryString(q, 'session'), 'session');
    const filters = parseEvents(s, queryString(q, 'events'));
    if (filters.length) {
      const unknown = unknownFilters(filters, await s.store.listEventTypes());
      if (unknown.length) throw new UnprocessableError('events', `match no event in the catalog: ${unknown.join(', ')}`);
    }
    const tenant = tenants.get(req)!;
    const url = listenUrl(tenant.id, session);
    const before = setups.get(url) ?? Promise.resolve();
    const setup = before.catch(() => undefined).then(() => findOrCreate(tenant, session, filters));
    setups.set(url, setup);
    let sub: Subscription;
    try {
      sub = await setup;
    } finally {
      if (setups.get(url) === setup) setups.delete(url);
    }
    const current = sub.secrets.find((x) => x.expiresAt === null) ?? sub.secrets[0];
    const secret = current ? s.box.open(current.enc) : null;

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    const write = (event: string, data: unknown) => {
      if (!res.destroyed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    // The listen subscription's secret is shown to its own tenant at every connect: a holder of
    // the api_token can rotate any of the tenant's secrets anyway, so this reveals nothing more.
    write('ready', {
      session, subscription_id: sub.id, tenant: { id: tenant.id, name: tenant.name }, secret, filters,
      timeout_ms: s.config.requestTimeoutMs, keep_alive_ms: KEEP_ALIVE_MS,
    });
    const stream: ListenStream = {
      subscriptionId: sub.id,
      push: (r: ListenRequest) => write('delivery', r),
      close: (reason) => {
        write('closed', { reason });
        res.end();
      },
    };
    hub.attach(url, stream);
    const keepAlive = setInterval(() => { if (!res.destroyed) res.write(': keep-alive\n\n'); }, KEEP_ALIVE_MS);
    let closed = false;
    let ended!: () => void;
    const end = new Promise<void>((resolve) => { ended = resolve; });
    open.add(end);
    res.on('close', () => {
      closed = true;
      clearInterval(keepAlive);
      // Paused, its deliveries are held (not lost) until the session connects again.
      if (hub.detach(url, stream)) pause(req, tenant, sub.id, url);
      open.delete(end);
      ended();
    });
    // Unpausing releases what was held while no stream was connected.
    const updated = await s.store.updateSubscription(tenant.id, sub.id, { paused: false, status: 'active', filters });
    if (!updated) {
      res.end();
      return;
    }
    // A stream that closed while it was being unpaused must not leave the session unpaused.
    if (closed && !hub.has(url)) pause(req, tenant, sub.id, url);
    s.wake();
  };

  return async function (app: FastifyInstance): Promise<void> {
    app.setErrorHandler(errorHandler(nativeError));
    app.addHook('onRequest', apiTokenAuth(s, tenants));
    // Open streams would hold the server's close forever; their sessions are paused first.
    app.addHook('preClose', async () => {
      hub?.closeAll();
      await Promise.all([...open]);
      await Promise.all([...pausing]);
    });

    app.get('/listen', {
      // A HEAD would attach a stream and never answer, holding the session from the real one.
      exposeHeadRoute: false,
      schema: route('native', {
        summary: 'Open a herald listen stream',
        tags: ['listen'],
        description: 'Server-Sent Events. The first event, `ready`, carries the session\'s subscription id and its Standard Webhooks signing secret. '
          + 'Each `delivery` event is one attempt: `{ request_id, delivery_id, event_id, event_type, headers, body }`; post the local receiver\'s answer to '
          + '`/listen/{session}/results` within `timeout_ms`. A `closed` event `{ reason }` ends the stream: `replaced` when a newer connection of the same session took over, `stopping` when Herald stops. '
          + 'While no stream is connected the session\'s subscription is paused and its deliveries are held.',
        querystring: obj({
          session: SESSION_SCHEMA,
          events: str({ max: 20_000, description: 'event types to receive, comma-separated (`Employee.*,Payroll.paid`); none: every event' }),
        }),
        produces: ['text/event-stream'],
        response: { 200: { type: 'string', description: 'An event stream: `ready`, then one `delivery` per attempt, and a comment every 15 s' } },
      }),
    }, openStream);

    app.post<{ Params: { session: string } }>('/listen/:session/results', {
      schema: route('native', {
        summary: 'Report a forwarded delivery\'s result',
        tags: ['listen'],
        description: 'What the local receiver answered to one `delivery` of the stream; it becomes that attempt\'s record. Give `status_code`, or `error` when no answer came.',
        params: obj({ session: SESSION_SCHEMA }, { required: ['session'] }),
        body: obj({
          request_id: str({ min: 1, max: 64, description: 'the `request_id` of the delivery event' }),
          status_code: nullable(int({ min: 100, max: 599, description: 'the local receiver\'s status' })),
          duration_ms: { type: 'number', minimum: 0, maximum: 86_400_000, description: 'how long the local receiver took' },
          body: nullable(str({ max: 8192, description: 'the start of its answer; Herald keeps the first 1 KB' })),
          error: nullable(str({ max: 1000, description: 'why no answer came' })),
          error_kind: { type: ['string', 'null'], enum: [...LOCAL_ERROR_KINDS, null], description: 'what kind of failure `error` is' },
          retry_after: nullable(str({ max: 100, description: 'its Retry-After header, as given' })),
        }, { required: ['request_id', 'duration_ms'] }),
        response: { 204: noContent },
      }),
    }, async (req, reply) => {
      if (!hub) throw new ConflictError('herald listen is not available on this Herald process');
      const session = parseSession(req.params.session, 'session');
      const o = objectBody(req.body);
      onlyKeys(o, ['request_id', 'status_code', 'duration_ms', 'body', 'error', 'error_kind', 'retry_after']);
      const requestId = optString(o, 'request_id', { min: 1, max: 64 });
      if (requestId === undefined) throw new ValidationError('request_id', 'is required');
      const code = o.status_code ?? null;
      if (code !== null && (typeof code !== 'number' || !Number.isInteger(code) || code < 100 || code > 599)) throw new ValidationError('status_code', 'must be an integer from 100 to 599');
      const duration = o.duration_ms;
      if (typeof duration !== 'number' || !Number.isFinite(duration) || duration < 0 || duration > 86_400_000) throw new ValidationError('duration_ms', 'must be a number of milliseconds from 0 to 86400000');
      const body = optString(o, 'body', { max: 8192 }) ?? null;
      const error = optString(o, 'error', { max: 1000 }) ?? null;
      const kind = optString(o, 'error_kind', { max: 20 }) ?? null;
      if (kind !== null && !LOCAL_ERROR_KINDS.includes(kind as ErrorKind)) throw new ValidationError('error_kind', `must be one of ${LOCAL_ERROR_KINDS.join(', ')}`);
      if (code === null && error === null) throw new ValidationError('status_code', 'is required when there is no error');
      const retryAfter = optString(o, 'retry_after', { max: 100 }) ?? undefined;
      const tenant = tenants.get(req)!;
      const ok = hub.report(listenUrl(tenant.id, session), requestId, {
        statusCode: code as number | null, durationMs: duration, body, error, errorKind: kind as ErrorKind | null, retryAfter,
      });
      if (!ok) throw new NotFoundError('listen request');
      return reply.status(204).send();
    });
  };
}
