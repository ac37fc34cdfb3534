import { randomBytes } from 'node:crypto';
import type { SubscriptionId } from '../../domain/ids.ts';
import type { StoredSecret, Subscription } from '../../domain/model.ts';
import type { Services } from '../../http/services.ts';

export const newStandardSecret = () => 'whsec_' + randomBytes(32).toString('base64');

/**
 * A new Standard Webhooks secret for the subscription. The secrets still valid keep signing
 * beside it (a signature per secret) for the rotation grace, so a receiver can switch to the
 * new one without refusing a delivery. Null when the subscription is gone.
 */
export async function rotateStandardSecret(s: Services, sub: Subscription): Promise<{ secret: string; previousValidUntil: number | null } | null> {
  const now = Date.now();
  const grace = now + s.config.secretRotationGraceSeconds * 1000;
  const secret = newStandardSecret();
  const kept: StoredSecret[] = sub.secrets
    .filter((x) => x.expiresAt === null || x.expiresAt > now)
    .map((x) => ({ enc: x.enc, expiresAt: x.expiresAt === null ? grace : Math.min(x.expiresAt, grace) }));
  const updated = await s.store.updateSubscription(sub.tenantId, sub.id as SubscriptionId, { secrets: [{ enc: s.box.seal(secret), expiresAt: null }, ...kept] });
  return updated ? { secret, previousValidUntil: kept.length ? grace : null } : null;
}
