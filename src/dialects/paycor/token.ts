import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Paycor-style OAuth access tokens, stateless: the tenant and expiry, MACed with a key
 * derived from HERALD_SECRET_KEY, so every Herald process on one database accepts them.
 */
export class TokenIssuer {
  private readonly key: Buffer;
  private readonly ttlSeconds: number;

  constructor(secretKey: Buffer, ttlSeconds: number) {
    this.key = createHmac('sha256', secretKey).update('herald paycor access token v1').digest();
    this.ttlSeconds = ttlSeconds;
  }

  issue(tenantId: string, nowMs = Date.now()): { token: string; expiresIn: number } {
    // The expiry is in whole seconds, rounded up: a token lives at least the expires_in it is
    // given (rounded down, one issued late in a second lived up to a second less; at a TTL of 1
    // it could be refused at once).
    const payload = Buffer.from(JSON.stringify({ t: tenantId, e: Math.ceil(nowMs / 1000) + this.ttlSeconds, n: randomBytes(8).toString('base64url') })).toString('base64url');
    return { token: `${payload}.${this.mac(payload)}`, expiresIn: this.ttlSeconds };
  }

  /** The tenant id, or why the token is refused (worded to follow "Authorization "). */
  verify(token: string, nowMs = Date.now()): { tenantId: string } | { error: string } {
    const dot = token.indexOf('.');
    if (dot < 1) return { error: 'holds no valid access token' };
    const payload = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const want = Buffer.from(this.mac(payload), 'base64url');
    if (given.length !== want.length || !timingSafeEqual(given, want)) return { error: 'holds no valid access token' };
    let body: { t?: unknown; e?: unknown };
    try {
      body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return { error: 'holds no valid access token' };
    }
    if (typeof body.t !== 'string' || typeof body.e !== 'number') return { error: 'holds no valid access token' };
    if (body.e * 1000 <= nowMs) return { error: 'holds an access token that has expired' };
    return { tenantId: body.t };
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}
