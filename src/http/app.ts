import { isUtf8 } from 'node:buffer';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { nativeRoutes } from '../dialects/native/routes.ts';
import { gustoError, gustoRoutes } from '../dialects/gusto/routes.ts';
import { paycorError, paycorRoutes } from '../dialects/paycor/routes.ts';
import { adminRoutes } from './admin.ts';
import { listenRoutes } from './listen.ts';
import { adminRecoveryRoutes, nativeRecoveryRoutes } from './recoveries.ts';
import { operationalRoutes } from './operational.ts';
import { dashboardApi } from './dashboardApi.ts';
import { dashboardRoutes } from './dashboard.ts';
import { ValidationError } from '../domain/errors.ts';
import { errorHandler, nativeError, type ErrorRenderer } from './errors.ts';
import { registerOpenApi } from './openapi.ts';
import { heraldValidatorCompiler, jsonSerializerCompiler } from './schemaValidator.ts';
import { healthzSchema } from './schemas.ts';
import type { Services } from './services.ts';

/** Which dialect's error shape answers for a path no route matched, or a router failure. */
const RENDERERS: [RegExp, ErrorRenderer][] = [
  [/^\/(eventsubscriptions|Accounts|v1\/events\/mockevent)(\/|$|\?)/i, paycorError],
  [/^\/v1\/(webhook_subscriptions|webhooks|events)(\/|$|\?)/i, gustoError],
];

const rendererFor = (req: FastifyRequest): ErrorRenderer => RENDERERS.find(([re]) => re.test(req.url))?.[1] ?? nativeError;

export function buildApp(s: Services, log: Logger): FastifyInstance {
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: s.config.maxBodyBytes,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    // Paths match in any letter case, as ASP.NET routes do; parameters keep theirs.
    routerOptions: { maxParamLength: 200, caseSensitive: false },
    // Router-level failures (a bad percent-encoding, an over-long path parameter) in the dialect's shape.
    frameworkErrors: (err, req, reply) => errorHandler(rendererFor(req))(err, req, reply),
  }) as unknown as FastifyInstance;
  // JSON must be UTF-8 (RFC 8259): invalid bytes are refused rather than stored as U+FFFD.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    if (!isUtf8(body as Buffer)) return done(new ValidationError('body', 'is not valid UTF-8'), undefined);
    parseJson(req, (body as Buffer).toString('utf8'), done);
  });
  // Form bodies are parsed for the dialects that use them (OAuth token requests).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  // A dialect's prefix answers in its shape even where no route matched (a 404's body is parsed, and can fail).
  app.setErrorHandler(errorHandler((f, req) => rendererFor(req)(f, req)));
  app.setNotFoundHandler((req, reply) => reply.status(404).send(rendererFor(req)({ status: 404, code: 'not_found', message: `no route for ${req.method} ${req.url.split('?')[0]}` }, req)));
  // Route schemas validate in Herald's own words, answers go out as built, and both feed the OpenAPI documents (before any route).
  app.setValidatorCompiler(heraldValidatorCompiler);
  app.setSerializerCompiler(jsonSerializerCompiler);
  registerOpenApi(app, s.userAgent.replace(/^Herald\//, ''));
  // In a plugin, so the spec builder (itself a plugin, loaded in order) sees it.
  app.register(async (ops) => { ops.get('/healthz', { schema: healthzSchema }, async () => ({ status: 'ok' })); });
  app.register(operationalRoutes(s));
  app.register(adminRoutes(s), { prefix: '/admin/v1' });
  app.register(dashboardApi(s));
  app.register(nativeRoutes(s), { prefix: '/api/v1' });
  app.register(listenRoutes(s), { prefix: '/api/v1' });
  app.register(adminRecoveryRoutes(s), { prefix: '/admin/v1' });
  app.register(nativeRecoveryRoutes(s), { prefix: '/api/v1' });
  app.register(paycorRoutes(s));
  app.register(gustoRoutes(s));
  app.register(dashboardRoutes());
  return app;
}
