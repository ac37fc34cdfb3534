import { createHmac } from 'node:crypto';

/** Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed by the decoded `whsec_` secret. */
export function standardSignature(secret: string, msgId: string, timestampSec: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  return 'v1,' + createHmac('sha256', key).update(`${msgId}.${timestampSec}.`).update(body, 'utf8').digest('base64');
}

/** Hex HMAC-SHA256 of the body bytes keyed by the secret's UTF-8 bytes. */
export function hexHmac(secret: string, body: string | Buffer): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(body).digest('hex');
}
