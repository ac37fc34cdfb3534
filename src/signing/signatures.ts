import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';

const keys = new Map<string, KeyObject>();

/** The decoded `whsec_` secret as a key object, made once per secret. */
function standardKey(secret: string): KeyObject {
  let k = keys.get(secret);
  if (!k) {
    if (keys.size > 10_000) keys.clear();
    k = createSecretKey(Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64'));
    keys.set(secret, k);
  }
  return k;
}

/** Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed by the decoded `whsec_` secret. */
export function standardSignature(secret: string, msgId: string, timestampSec: number, body: string): string {
  return 'v1,' + createHmac('sha256', standardKey(secret)).update(`${msgId}.${timestampSec}.`).update(body, 'utf8').digest('base64');
}

/** Hex HMAC-SHA256 of the body bytes keyed by the secret's UTF-8 bytes. */
export function hexHmac(secret: string, body: string | Buffer): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(body).digest('hex');
}
