import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AuthError, ConflictError, NotFoundError, STORE_RETRY_AFTER_SECONDS, StoreUnavailableError, ValidationError } from '../domain/errors.ts';

/** A failure as every dialect sees it before rendering it in its own shape. */
export interface Failure {
  status: number;
  code: string;
  message: string;
  field?: string;
  /** Seconds a client should wait before trying again (a Retry-After header). */
  retryAfterSeconds?: number;
}

/**
 * Turns anything thrown in a route into a Failure. Fastify's own 4xx (malformed JSON,
 * wrong content type, body too large) are about the body as a whole.
 */
export function toFailure(err: unknown): Failure {
  if (err instanceof ValidationError) return { status: err.status, code: err.status === 422 ? 'unprocessable' : 'invalid_request', message: `${err.field} ${err.message}`, field: err.field };
  if (err instanceof NotFoundError) return { status: 404, code: 'not_found', message: err.message };
  if (err instanceof AuthError) return { status: 401, code: 'unauthorized', message: err.field ? `${err.field} ${err.message}` : err.message, ...(err.field ? { field: err.field } : {}) };
  if (err instanceof ConflictError) return { status: 409, code: 'conflict', message: err.message };
  // The store is down or full: nothing was stored, and the same request later may succeed.
  // A full disk is 507, so that an operator sees it is space that is missing, not a server.
  if (err instanceof StoreUnavailableError) {
    return err.reason === 'full'
      ? { status: 507, code: 'insufficient_storage', message: `${err.message}; try again later`, retryAfterSeconds: STORE_RETRY_AFTER_SECONDS }
      : { status: 503, code: 'store_unavailable', message: `${err.message}; try again later`, retryAfterSeconds: STORE_RETRY_AFTER_SECONDS };
  }
  const fe = err as FastifyError;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const message = fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || fe instanceof SyntaxError ? 'body is not valid JSON' : fe.message;
    return { status: fe.statusCode, code: 'invalid_request', message, field: 'body' };
  }
  return { status: 500, code: 'internal', message: 'internal error' };
}

/** Renders a Failure in one dialect's error shape. */
export type ErrorRenderer = (f: Failure, req: FastifyRequest) => unknown;

export function errorHandler(render: ErrorRenderer) {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const f = toFailure(err);
    // The route's own limit (HERALD_MAX_BODY_BYTES, or the batch route's), rather than Fastify's words.
    if ((err as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE') f.message = `body must be at most ${req.routeOptions.bodyLimit} bytes`;
    if (f.status >= 500) req.log.error({ err }, 'request failed');
    if (f.status === 401) reply.header('www-authenticate', 'Bearer');
    if (f.retryAfterSeconds !== undefined) reply.header('retry-after', String(f.retryAfterSeconds));
    return reply.status(f.status).send(render(f, req));
  };
}

/** Herald's own shape, used by the admin and native APIs. */
export const nativeError: ErrorRenderer = (f) => ({ error: { code: f.code, message: f.message, ...(f.field ? { field: f.field } : {}) } });

export function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}
