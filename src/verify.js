// herald/verify: what a receiver runs to know that a webhook really came from Herald.
//
// Plain JavaScript with a hand-written declaration file (verify.d.ts), not TypeScript: Node
// will not strip types from files under node_modules, and a receiver may run any Node from
// 18 on. It needs nothing beyond node:crypto, and it shares no code with Herald's signer
// (src/signing/), so that a mistake made once cannot hide in both; the tests check that the
// two agree on what Herald really sends.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Standard Webhooks' default: a delivery older or newer than this is refused. */
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

/** Default cap of readRawBody: above the largest body Herald sends (1 MiB of event data, which Paycor-style \u escapes can triple). */
export const DEFAULT_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

const PAYCOR_HEADER = 'x-paycor-signature';
const GUSTO_HEADER = 'x-gusto-signature';
const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Checks a Standard Webhooks delivery from a native Herald endpoint.
 *
 * Herald sends `webhook-id` (the event id, the same on every retry), `webhook-timestamp`
 * (unix seconds of this attempt) and `webhook-signature`: one `v1,<base64 HMAC-SHA256>` of
 * `<id>.<timestamp>.<body>` per secret that is valid, space-separated, keyed by the base64
 * bytes after `whsec_`.
 *
 * Pitfalls:
 * - Pass the raw body bytes exactly as received. A body parser that turns the JSON into an
 *   object and back reorders keys, changes escapes and spacing, and the signature no longer
 *   matches. In Express mount `express.raw({ type: 'application/json' })` on this route (or
 *   use readRawBody); with fetch-style handlers use `await request.arrayBuffer()`.
 * - The timestamp is part of what is signed: a delivery outside the tolerance (5 minutes
 *   either way by default) is refused even though its signature matches, so that a captured
 *   request cannot be replayed later. Keep the receiver's clock on NTP. The reasons
 *   `timestamp_too_old` and `timestamp_in_future` are only given once the signature has
 *   matched.
 * - A signature check does not stop a replay inside the tolerance, and Herald delivers at
 *   least once: retries carry the same `webhook-id`. Deduplicate on the returned `id`.
 * - During a secret rotation Herald signs with the old and the new secret for a grace period
 *   (two signatures in the header). Pass both secrets while you switch over; drop the old one
 *   when the grace period ends.
 * - The secret is the whole `whsec_...` string; its base64 part is decoded to the HMAC key,
 *   not used as text.
 */
export function verifyStandard(rawBody, headers, secrets, opts = {}) {
  const body = bodyBytes(rawBody, 'verifyStandard');
  const list = secretList(secrets, 'verifyStandard');
  const { toleranceSeconds, nowSeconds } = timeOptions(opts);
  const id = headerValue(headers, 'webhook-id');
  const ts = headerValue(headers, 'webhook-timestamp');
  const sig = headerValue(headers, 'webhook-signature', ' ');
  const missing = [['webhook-id', id], ['webhook-timestamp', ts], ['webhook-signature', sig]].filter(([, v]) => !v).map(([n]) => n);
  if (missing.length) return fail('missing_header', `no ${missing.join(', ')} header`);
  if (!/^\d{1,15}$/.test(ts)) return fail('bad_timestamp', 'webhook-timestamp is not a whole number of unix seconds');
  const keys = [];
  for (let i = 0; i < list.length; i++) {
    const key = standardKey(list[i]);
    if (!key) return fail('bad_secret', `secret ${i + 1} is not a whsec_ secret (whsec_ followed by base64)`);
    keys.push(key);
  }
  // The header may come joined with ", " when a proxy merged two of them.
  const given = [];
  for (const part of sig.split(/\s+/)) {
    const m = /^v1,([A-Za-z0-9+/]+={0,2}),?$/.exec(part);
    if (m) given.push(Buffer.from(m[1], 'base64'));
  }
  if (given.length === 0) return fail('no_matching_signature', 'webhook-signature holds no v1 signature');
  const signed = (key) => createHmac('sha256', key).update(`${id}.${ts}.`).update(body).digest();
  if (!anyMatch(keys.map(signed), given)) return fail('no_matching_signature', 'no signature in webhook-signature matches the body with these secrets');
  const timestamp = Number(ts);
  if (nowSeconds - timestamp > toleranceSeconds) return fail('timestamp_too_old', `the signature matches, but webhook-timestamp is ${nowSeconds - timestamp} s old (tolerance ${toleranceSeconds} s)`, { id, timestamp });
  if (timestamp - nowSeconds > toleranceSeconds) return fail('timestamp_in_future', `the signature matches, but webhook-timestamp is ${timestamp - nowSeconds} s ahead of this clock (tolerance ${toleranceSeconds} s)`, { id, timestamp });
  return { ok: true, id, timestamp };
}

/**
 * Checks a Paycor-style notification: the upper-case hex HMAC-SHA256 of the body, keyed by
 * the registration's `Secret`, in `X-Paycor-Signature` (or the header Herald's operator set
 * with HERALD_PAYCOR_SIGNATURE_HEADER: pass it as `opts.header`).
 *
 * Pitfalls:
 * - Pass the raw body bytes exactly as received. Herald writes every character past `~` as
 *   a JSON `\uXXXX` escape, so the body is pure ASCII (that is what lets Paycor's sample
 *   validator, which encodes the body as ASCII, accept names like `José`). Parsing the JSON
 *   and serialising it again turns `\u00e9` into `é`, changes the bytes and breaks the
 *   signature; so does reading the body as text in any encoding but UTF-8 or ASCII.
 * - There is no timestamp, so nothing here refuses a replayed notification: deduplicate on
 *   `EventId` (returned as `id`), which stays the same on every retry.
 * - The secret is used as its ASCII bytes; Herald only accepts printable ASCII secrets.
 * - A `PUT` with a new `Secret` takes effect for the next attempt at once, retries of older
 *   notifications included, with no period when both sign: pass the old and the new secret
 *   while you switch.
 * - Compare with this function, not `==`: it compares in constant time.
 */
export function verifyPaycor(rawBody, headers, secret, opts = {}) {
  const body = bodyBytes(rawBody, 'verifyPaycor');
  const list = secretList(secret, 'verifyPaycor');
  const name = headerName(opts.header, PAYCOR_HEADER, 'verifyPaycor');
  const sig = headerValue(headers, name);
  if (!sig) return fail('missing_header', `no ${name} header`);
  for (let i = 0; i < list.length; i++) {
    if (!/^[\x20-\x7e]+$/.test(list[i])) return fail('bad_secret', `secret ${i + 1} is not printable ASCII, and Herald's Paycor-style secrets always are`);
  }
  if (!HEX_SHA256.test(sig)) return fail('no_matching_signature', `${name} is not 64 hex digits`);
  const expected = list.map((s) => createHmac('sha256', Buffer.from(s, 'ascii')).update(body).digest());
  if (!anyMatch(expected, [Buffer.from(sig, 'hex')])) {
    const hint = body.some((b) => b > 0x7e)
      ? ': the body has bytes past ASCII, which Herald never sends in this dialect, so it was probably parsed and serialised again'
      : '';
    return fail('no_matching_signature', `${name} does not match the body with ${list.length > 1 ? 'any of these secrets' : 'this secret'}${hint}`);
  }
  const id = bodyField(body, 'EventId');
  return id === undefined ? { ok: true } : { ok: true, id };
}

/**
 * Checks a Gusto-style event: the lower-case hex HMAC-SHA256 of the body, keyed by the
 * subscription's verification token, in `X-Gusto-Signature`.
 *
 * Pitfalls:
 * - Pass the raw body bytes exactly as received, not JSON parsed and serialised again (key
 *   order, spacing and escapes would change, and the signature with them).
 * - The first request, `{"verification_token":"..."}`, is signed with the very token it
 *   carries, so its signature proves nothing by itself: anyone can make one. What proves it
 *   is sending the token back to Herald (`PUT /v1/webhook_subscriptions/{uuid}/verify`) over
 *   your authenticated API, which accepts only the token Herald made. Keep that token: every
 *   later event is signed with it.
 * - There is no timestamp, so nothing here refuses a replayed event: deduplicate on `uuid`
 *   (returned as `id`), which stays the same on every retry.
 * - Compare with this function, not `==`: it compares in constant time.
 */
export function verifyGusto(rawBody, headers, verificationToken, opts = {}) {
  const body = bodyBytes(rawBody, 'verifyGusto');
  const list = secretList(verificationToken, 'verifyGusto');
  const name = headerName(opts.header, GUSTO_HEADER, 'verifyGusto');
  const sig = headerValue(headers, name);
  if (!sig) return fail('missing_header', `no ${name} header`);
  for (let i = 0; i < list.length; i++) {
    if (list[i] !== list[i].trim()) return fail('bad_secret', `verification token ${i + 1} has white space around it`);
  }
  if (!HEX_SHA256.test(sig)) return fail('no_matching_signature', `${name} is not 64 hex digits`);
  const expected = list.map((t) => createHmac('sha256', Buffer.from(t, 'utf8')).update(body).digest());
  if (!anyMatch(expected, [Buffer.from(sig, 'hex')])) return fail('no_matching_signature', `${name} does not match the body with ${list.length > 1 ? 'any of these tokens' : 'this token'}`);
  const id = bodyField(body, 'uuid');
  return id === undefined ? { ok: true } : { ok: true, id };
}

/**
 * The raw body of a Node `http` request (an Express `req` too), for the functions above.
 * Takes `req.rawBody` or a Buffer `req.body` when a middleware already kept the bytes
 * (`express.raw()`), and refuses a request whose body a parser has already consumed.
 */
export function readRawBody(req, opts = {}) {
  const limit = opts.limitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  if (!Number.isSafeInteger(limit) || limit < 0) throw new TypeError('readRawBody: limitBytes must be a whole number of bytes');
  if (req == null || typeof req.on !== 'function') throw new TypeError('readRawBody: expected a Node http request');
  for (const kept of [req.rawBody, req.body]) {
    if (Buffer.isBuffer(kept)) return Promise.resolve(kept);
    if (kept instanceof Uint8Array) return Promise.resolve(Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength));
  }
  if (req.body !== undefined || req.readableEnded) {
    return Promise.reject(new TypeError('readRawBody: the body was already read and parsed; mount express.raw({ type: \'application/json\' }) on this route instead of a JSON parser'));
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const onData = (chunk) => {
      size += chunk.length;
      if (size > limit) {
        done();
        req.resume(); // drain the rest, so the caller can still answer 413
        const err = new Error(`readRawBody: the body is larger than ${limit} bytes`);
        err.code = 'HERALD_BODY_TOO_LARGE';
        reject(err);
        return;
      }
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    };
    const onEnd = () => { done(); resolve(Buffer.concat(chunks)); };
    const onError = (err) => { done(); reject(err); };
    const onClose = () => { done(); reject(new Error('readRawBody: the request was closed before its body ended')); };
    const done = () => {
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onError);
      req.removeListener('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function fail(reason, message, extra) {
  return { ok: false, reason, message, ...extra };
}

/** Compares every candidate in constant time, without stopping at the first match. */
function anyMatch(expected, given) {
  let matched = false;
  for (const e of expected) {
    for (const g of given) {
      if (g.length === e.length && timingSafeEqual(e, g)) matched = true;
    }
  }
  return matched;
}

function bodyBytes(rawBody, fn) {
  if (typeof rawBody === 'string') return Buffer.from(rawBody, 'utf8');
  if (rawBody instanceof Uint8Array) return Buffer.from(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength);
  if (rawBody instanceof ArrayBuffer) return Buffer.from(rawBody);
  const got = rawBody === null ? 'null' : typeof rawBody;
  throw new TypeError(`${fn}: rawBody must be the raw body as received (a string, Buffer, Uint8Array or ArrayBuffer), not ${got}` +
    (got === 'object' ? ': a JSON body parser has probably run before; verify the bytes, not the parsed object' : ''));
}

function secretList(secrets, fn) {
  const list = typeof secrets === 'string' ? [secrets] : Array.isArray(secrets) ? secrets : null;
  if (!list || list.length === 0) throw new TypeError(`${fn}: no secret given (a string, or an array of them during a rotation)`);
  for (const s of list) {
    if (typeof s !== 'string' || s === '') throw new TypeError(`${fn}: every secret must be a non-empty string`);
  }
  return list;
}

function standardKey(secret) {
  const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  if (!BASE64.test(b64) || b64.length % 4 === 1) return null;
  const key = Buffer.from(b64, 'base64');
  return key.length > 0 ? key : null;
}

function timeOptions(opts) {
  const toleranceSeconds = opts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (typeof toleranceSeconds !== 'number' || Number.isNaN(toleranceSeconds) || toleranceSeconds < 0) {
    throw new TypeError('verifyStandard: toleranceSeconds must be a number of seconds, 0 or more');
  }
  const now = opts.now ?? Date.now();
  const ms = now instanceof Date ? now.getTime() : now;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new TypeError('verifyStandard: now must be a Date or milliseconds since the epoch');
  return { toleranceSeconds, nowSeconds: Math.floor(ms / 1000) };
}

function headerName(name, fallback, fn) {
  if (name === undefined) return fallback;
  if (typeof name !== 'string' || name === '') throw new TypeError(`${fn}: header must be a header name`);
  return name.toLowerCase();
}

/**
 * One header from a node IncomingMessage's `headers`, any plain object whose keys may be in
 * any case, or a WHATWG Headers. Repeated values are joined with `join`; for a header that
 * should appear once the first value counts.
 */
function headerValue(headers, name, join) {
  if (headers == null || typeof headers !== 'object') throw new TypeError('headers must be an object of header names to values, or a Headers');
  let v;
  if (typeof headers.get === 'function' && typeof headers.has === 'function') {
    v = headers.get(name);
  } else {
    for (const key of Object.keys(headers)) {
      if (key.toLowerCase() === name) { v = headers[key]; break; }
    }
  }
  if (Array.isArray(v)) v = join ? v.join(join) : v[0];
  if (v === undefined || v === null) return undefined;
  const s = String(v).trim();
  return s === '' ? undefined : s;
}

function bodyField(body, field) {
  try {
    const v = JSON.parse(body.toString('utf8'));
    const id = v && typeof v === 'object' ? v[field] : undefined;
    return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined;
  } catch {
    return undefined;
  }
}
