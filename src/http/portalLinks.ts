import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Every portal token starts so: the portal tells it from a tenant's api_token by this alone. */
export const PORTAL_TOKEN_PREFIX = 'hp_';

/**
 * Subscriber portal links, stateless: the tenant and expiry, MACed with a key derived from
 * HERALD_SECRET_KEY (its own derivation, so no other Herald token can pass for one), so
 * every Herald process on one database accepts the links any of them minted. A link cannot
 * be revoked before it expires, except by deleting the tenant: keep lifetimes short.
 */
export class PortalLinks {
  private readonly key: Buffer;

  constructor(secretKey: Buffer) {
    this.key = createHmac('sha256', secretKey).update('herald portal link v1').digest();
  }

  issue(tenantId: string, ttlSeconds: number, nowMs = Date.now()): { token: string; expiresAt: number } {
    const expiresAt = (Math.floor(nowMs / 1000) + ttlSeconds) * 1000;
    const payload = Buffer.from(JSON.stringify({ t: tenantId, e: expiresAt / 1000, n: randomBytes(8).toString('base64url') })).toString('base64url');
    return { token: `${PORTAL_TOKEN_PREFIX}${payload}.${this.mac(payload)}`, expiresAt };
  }

  /** The tenant id and expiry, or why the token is refused. */
  verify(token: string, nowMs = Date.now()): { tenantId: string; expiresAt: number } | { error: string } {
    const invalid = { error: 'the portal link is not valid' };
    if (!token.startsWith(PORTAL_TOKEN_PREFIX)) return invalid;
    const rest = token.slice(PORTAL_TOKEN_PREFIX.length);
    const dot = rest.indexOf('.');
    if (dot < 1) return invalid;
    const payload = rest.slice(0, dot);
    const given = Buffer.from(rest.slice(dot + 1), 'base64url');
    const want = Buffer.from(this.mac(payload), 'base64url');
    if (given.length !== want.length || !timingSafeEqual(given, want)) return invalid;
    let body: { t?: unknown; e?: unknown };
    try {
      body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return invalid;
    }
    if (typeof body.t !== 'string' || typeof body.e !== 'number' || !Number.isFinite(body.e)) return invalid;
    if (body.e * 1000 <= nowMs) return { error: 'the portal link has expired; ask for a new one' };
    return { tenantId: body.t, expiresAt: body.e * 1000 };
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}
