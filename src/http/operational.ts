// The operational endpoints beside /healthz: /readyz for load balancers and orchestrators,
// /metrics for Prometheus. Both belong to the admin document.
import type { FastifyInstance } from 'fastify';
import { AuthError } from '../domain/errors.ts';
import type { HeraldMetrics } from '../observability/metrics.ts';
import type { Readiness } from '../observability/readiness.ts';
import { safeEqual } from '../secrets.ts';
import { bearer } from './errors.ts';
import { arr, int, obj, route, str } from './schemas.ts';
import type { Services } from './services.ts';

/** What the operational routes are given, beside the usual services. */
export interface Operational {
  /** Null when metrics are off: /metrics is then not served. */
  metrics: HeraldMetrics | null;
  readiness: () => Promise<Readiness>;
}

const TAGS = ['operations'];
const store = str({ enum: ['sqlite', 'postgres'], description: 'the storage engine' });
const migrations = arr(int({ min: 1 }), { description: 'the migration versions applied to the store' });

const readySchema = route('native', {
  summary: 'Readiness: the store answers and its schema is the one this build knows',
  description: 'For a load balancer or orchestrator: 503 while the store is unreachable or a migration is missing or unknown. '
    + '`/healthz` is the liveness check and asks nothing of the store.',
  tags: TAGS,
  security: [],
  response: {
    200: obj({ status: str({ enum: ['ready'] }), store, migrations }, { required: ['status', 'store', 'migrations'], description: 'Ready to take traffic' }),
    503: obj({ status: str({ enum: ['not_ready'] }), store, reason: str({ description: 'what is wrong' }), migrations }, {
      required: ['status', 'store', 'reason'], description: 'Not ready: the store does not answer, or its migrations are not the ones this build knows',
    }),
  },
});

const METRICS_MEDIA_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const metricsSchema = route('native', {
  summary: 'Prometheus metrics',
  description: 'The Prometheus text exposition format. When HERALD_METRICS_TOKEN is set, it requires `Authorization: Bearer <that token>` '
    + '(not the admin token), and answers 401 without it; when unset, it is open. Not served when HERALD_METRICS is off.',
  tags: TAGS,
  // Open unless HERALD_METRICS_TOKEN is set; then that token, not the admin's.
  security: [{}, { metricsToken: [] }],
  // Only the 200 is text; a refusal is Herald's JSON error.
  response: { 200: { description: 'Every herald_* metric', content: { [METRICS_MEDIA_TYPE]: { schema: str({ description: 'the Prometheus text exposition format 0.0.4' }) } } } },
});

export function operationalRoutes(s: Services) {
  return async function (app: FastifyInstance): Promise<void> {
    const ops = s.operational;
    if (!ops) return;

    app.get('/readyz', { schema: readySchema }, async (_req, reply) => {
      const r = await ops.readiness();
      return reply.status(r.status === 'ready' ? 200 : 503).send(r);
    });

    const metrics = ops.metrics;
    if (!metrics) return;
    const token = s.config.metricsToken;
    app.get('/metrics', {
      schema: metricsSchema,
      onRequest: async (req) => {
        if (token === null) return;
        const given = bearer(req);
        if (!given) throw new AuthError('an Authorization: Bearer header with the metrics token is required');
        if (!safeEqual(given, token)) throw new AuthError('the metrics token is not valid');
      },
    }, async (_req, reply) => {
      const text = await metrics.render();
      return reply.type(metrics.contentType).send(text);
    });
  };
}
