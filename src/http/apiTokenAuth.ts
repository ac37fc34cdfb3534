import type { FastifyRequest } from 'fastify';
import { AuthError } from '../domain/errors.ts';
import type { Tenant } from '../domain/model.ts';
import { hashToken } from '../secrets.ts';
import { bearer } from './errors.ts';
import type { Services } from './services.ts';

/**
 * An onRequest hook for the routes a tenant reaches with its api_token (the native API and
 * `herald listen`): it finds the tenant by the token's hash and files it under the request.
 */
export function apiTokenAuth(s: Services, tenants: WeakMap<FastifyRequest, Tenant>) {
  return async (req: FastifyRequest): Promise<void> => {
    const token = bearer(req);
    if (!token) throw new AuthError('an Authorization: Bearer header with the api_token is required');
    const t = await s.store.tenantByApiTokenHash(hashToken(token));
    if (!t) throw new AuthError('the api_token is not valid');
    tenants.set(req, t);
  };
}
