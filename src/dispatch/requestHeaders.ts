/**
 * What an attempt's record keeps of the headers Herald sent. A subscription's custom
 * headers are the subscriber's own credentials for its receiver (an Authorization, an API
 * key), which the dashboard and portal must never show; Herald's own headers, signatures
 * included, are derived from the body and a secret that is not sent, so they stay.
 */
export const REDACTED = '[redacted]';

/** A header name that looks like it carries a credential. */
const SECRET_NAME = /authorization|auth|cookie|token|secret|key|password|passwd|credential|session/i;

export const looksSecret = (name: string): boolean => SECRET_NAME.test(name);

/**
 * The sent headers, with the value of each custom header whose name looks secret replaced.
 * A custom header that a dialect's own header overrode was not sent as given, so what was
 * sent stays.
 */
export function recordedHeaders(sent: Record<string, string>, custom: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { ...sent };
  for (const [k, v] of Object.entries(custom)) {
    const name = k.toLowerCase();
    if (out[name] === v && looksSecret(name)) out[name] = REDACTED;
  }
  return out;
}
