// The OpenAPI documents: one per API, cut from the one spec @fastify/swagger builds from
// the route schemas, so what is documented is what validates. A path belongs to the first
// document whose pattern matches it (the team's route placement); a route with no `tags`
// is left out, and the drift test names it.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../domain/errors.ts';

export const DOCUMENT_NAMES = ['admin', 'native', 'paycor', 'gusto'] as const;
export type DocumentName = (typeof DOCUMENT_NAMES)[number];

type Security = Record<string, string[]>[];

interface DocumentSpec {
  name: DocumentName;
  title: string;
  description: string;
  /** Paths of this document; tested in the order of DOCUMENTS, first match wins. */
  paths: RegExp;
  security: Security;
}

// Paycor's mock-event path sits under Gusto's /v1/events, so Paycor is asked first.
export const DOCUMENTS: DocumentSpec[] = [
  {
    name: 'admin',
    title: 'Herald admin API',
    description: 'The operator\'s API: tenants, the event catalog, publishing, deliveries; and the operational endpoints (health, readiness, metrics). '
      + 'Every call carries `Authorization: Bearer <HERALD_ADMIN_TOKEN>` unless its operation says otherwise. Errors are `{ error: { code, message, field } }`.',
    paths: /^\/(admin\/v1(\/|$)|healthz$|readyz$|metrics$)/i,
    security: [{ adminToken: [] }],
  },
  {
    name: 'native',
    title: 'Herald API',
    description: 'A tenant\'s own API: endpoints signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`), '
      + 'their deliveries and attempts, `herald listen` streams, and the subscriber portal. '
      + 'Calls carry `Authorization: Bearer <api_token>` (the portal also takes a portal link token). Errors are `{ error: { code, message, field } }`.',
    paths: /^\/(api|portal)\/v1(\/|$)/i,
    security: [{ tenantToken: [] }],
  },
  {
    name: 'paycor',
    title: 'Herald Paycor-style API',
    description: 'Webhook registrations in the Paycor style: get an access token with the tenant\'s client credentials, then call with it and the '
      + '`Ocp-Apim-Subscription-Key` header. JSON field names bind in any letter case and unknown fields are ignored. Notifications are signed with '
      + 'an upper-case hex HMAC-SHA256 of the body. Errors are `{ CorrelationId, Title, Detail, Source }`.',
    paths: /^\/(eventsubscriptions(\/|$)|accounts\/|v1\/events\/mockevent$)/i,
    security: [{ paycorOAuth: [], subscriptionKey: [] }],
  },
  {
    name: 'gusto',
    title: 'Herald Gusto-style API',
    description: 'Webhook subscriptions in the Gusto style, with the verification handshake, and the events API. Calls carry '
      + '`Authorization: Token <api_token>` (or `Bearer`). Notifications carry `X-Gusto-Signature`, a lower-case hex HMAC-SHA256 of the body keyed by '
      + 'the verification token. Errors are `{ errors: [{ error_key, category, message }] }`; field errors are 422.',
    paths: /^\/v1\/(webhook_subscriptions|webhooks|events)(\/|$)/i,
    security: [{ gustoToken: [] }, { gustoBearer: [] }],
  },
];

const SECURITY_SCHEMES: Record<string, Record<string, unknown>> = {
  adminToken: { type: 'http', scheme: 'bearer', description: 'The operator\'s token, HERALD_ADMIN_TOKEN' },
  // For /metrics: `security: [{}, { metricsToken: [] }]` says open unless HERALD_METRICS_TOKEN is set.
  metricsToken: { type: 'http', scheme: 'bearer', description: 'HERALD_METRICS_TOKEN, when it is set' },
  tenantToken: { type: 'http', scheme: 'bearer', description: 'A tenant\'s api_token (from POST /admin/v1/tenants), or on /portal/v1 a portal link token' },
  paycorOAuth: {
    type: 'oauth2',
    description: 'An access token from POST /Accounts/v2/Common/Token (client credentials: the tenant\'s client_id and client_secret)',
    flows: { clientCredentials: { tokenUrl: '/Accounts/v2/Common/Token', scopes: {} } },
  },
  subscriptionKey: { type: 'apiKey', in: 'header', name: 'Ocp-Apim-Subscription-Key', description: 'The tenant\'s subscription key' },
  gustoToken: { type: 'apiKey', in: 'header', name: 'Authorization', description: '`Token <api_token>`: the tenant\'s api_token after the word Token' },
  gustoBearer: { type: 'http', scheme: 'bearer', description: 'The tenant\'s api_token as a Bearer token' },
};

/** Which document a path belongs to, or null for a path no API owns. */
export function documentFor(path: string): DocumentName | null {
  return DOCUMENTS.find((d) => d.paths.test(path))?.name ?? null;
}

type Spec = { paths?: Record<string, Record<string, { tags?: string[]; security?: Security }>>; components?: Record<string, unknown> } & Record<string, unknown>;

/** Cuts the whole spec into the four documents, each with its own title, security and tags. */
export function splitSpec(whole: Spec, version: string): Record<DocumentName, Record<string, unknown>> {
  const out = {} as Record<DocumentName, Record<string, unknown>>;
  for (const d of DOCUMENTS) {
    const paths = Object.fromEntries(Object.entries(whole.paths ?? {}).filter(([p]) => documentFor(p) === d.name));
    const used = (sec: Security | undefined) => (sec ?? []).flatMap((s) => Object.keys(s));
    const schemeNames = new Set([...used(d.security), ...Object.values(paths).flatMap((ops) => Object.values(ops).flatMap((op) => used(op.security)))]);
    const tags = [...new Set(Object.values(paths).flatMap((ops) => Object.values(ops).flatMap((op) => op.tags ?? [])))];
    const schemas = (whole.components as { schemas?: Record<string, unknown> } | undefined)?.schemas ?? {};
    out[d.name] = {
      openapi: whole.openapi,
      info: { title: d.title, version, description: d.description, license: { name: 'Apache-2.0', identifier: 'Apache-2.0' } },
      // Relative: the document is served by the Herald it describes, wherever it is reached.
      servers: [{ url: '/', description: 'this Herald' }],
      tags: tags.map((name) => ({ name })),
      security: d.security,
      paths,
      components: {
        securitySchemes: Object.fromEntries([...schemeNames].map((n) => [n, SECURITY_SCHEMES[n]])),
        ...(Object.keys(schemas).length ? { schemas } : {}),
      },
    };
  }
  return out;
}

/**
 * Registers the spec builder on the root instance (it must see every route, so call this
 * before any route is added) and serves the documents and the reference page under /openapi.
 */
export function registerOpenApi(app: FastifyInstance, version: string): void {
  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Herald', version },
      components: { securitySchemes: SECURITY_SCHEMES as never },
    },
    // A route without tags is not documented: the drift test then fails and names it.
    hideUntagged: true,
  });

  let cache: Record<DocumentName, Record<string, unknown>> | null = null;
  const documents = () => (cache ??= splitSpec(app.swagger() as unknown as Spec, version));
  app.register(async (docs: FastifyInstance) => {
    docs.get<{ Params: { name: string } }>('/:name.json', { schema: { hide: true } }, async (req) => {
      const doc = (documents() as Record<string, unknown>)[req.params.name];
      if (!doc) throw new NotFoundError(`OpenAPI document ${req.params.name}`);
      return doc;
    });
  }, { prefix: '/openapi' });

  app.register(swaggerUi, {
    routePrefix: '/openapi',
    uiConfig: {
      urls: DOCUMENTS.map((d) => ({ url: `/openapi/${d.name}.json`, name: d.title })),
      deepLinking: true,
    },
    // validatorUrl is left unset: the page then calls no online validator, nothing outside Herald.
  });
}
