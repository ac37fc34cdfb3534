// Types of herald/verify (src/verify.js). Written by hand: the module is plain JavaScript so
// that it runs from node_modules on any Node from 18 on.
import type { IncomingMessage } from 'node:http';

/** The exact bytes received. A string is taken as its UTF-8 bytes. */
export type RawBody = string | Uint8Array | ArrayBuffer;

/**
 * Request headers: node's `req.headers` (string or string[] values), any plain object whose
 * keys may be in any letter case, or a WHATWG `Headers`.
 */
export type HeaderSource =
  | { readonly [name: string]: string | readonly string[] | number | undefined }
  | { get(name: string): string | null; has(name: string): boolean };

/** One secret, or several while one is being rotated out. */
export type Secrets = string | readonly string[];

/**
 * Why a request was refused:
 * - `missing_header`: a header the scheme needs is absent or empty;
 * - `bad_timestamp`: `webhook-timestamp` is not whole unix seconds;
 * - `timestamp_too_old` / `timestamp_in_future`: the signature matched, but the timestamp is
 *   outside the tolerance (a replay, or a wrong clock);
 * - `no_matching_signature`: no signature matches the body with the secrets given (a wrong
 *   secret, or a body that is not the bytes Herald sent);
 * - `bad_secret`: a secret given cannot be one of this scheme's (a configuration mistake).
 */
export type VerifyFailureReason =
  | 'missing_header'
  | 'bad_timestamp'
  | 'timestamp_too_old'
  | 'timestamp_in_future'
  | 'no_matching_signature'
  | 'bad_secret';

export interface VerifySuccess {
  ok: true;
  /** The event id to deduplicate on: `webhook-id`, Paycor's `EventId`, Gusto's `uuid` (absent from the verification request). */
  id?: string;
  /** Standard Webhooks only: `webhook-timestamp`, unix seconds of this attempt. */
  timestamp?: number;
}

export interface VerifyFailure {
  ok: false;
  reason: VerifyFailureReason;
  /** A sentence for logs and people; it never holds a secret. */
  message: string;
  /** Given with the timestamp reasons, where the signature did match. */
  id?: string;
  timestamp?: number;
}

export type VerifyResult = VerifySuccess | VerifyFailure;

export interface StandardOptions {
  /** Largest gap between `webhook-timestamp` and now, either way. Default 300 (5 minutes); `Infinity` turns the check off. */
  toleranceSeconds?: number;
  /** The time to check against, as a Date or milliseconds since the epoch. Default: now. */
  now?: Date | number;
}

export interface SignatureHeaderOptions {
  /** The header that carries the signature, in any letter case. */
  header?: string;
}

export const DEFAULT_TOLERANCE_SECONDS: number;
export const DEFAULT_BODY_LIMIT_BYTES: number;

/**
 * Checks a Standard Webhooks delivery from a native Herald endpoint (`webhook-id`,
 * `webhook-timestamp`, `webhook-signature`; `whsec_` secrets).
 *
 * Pitfalls:
 * - Pass the raw body bytes exactly as received, never JSON parsed and serialised again: key
 *   order, escapes and spacing change and the signature no longer matches.
 * - A delivery outside the tolerance (5 minutes either way by default) is refused even when
 *   its signature matches: that is what stops a captured request from being replayed later.
 *   Keep the clock on NTP.
 * - Inside the tolerance a replay still passes, and Herald delivers at least once:
 *   deduplicate on the returned `id` (the event id, the same on every retry).
 * - During a rotation Herald signs with both the old and the new secret; pass both while
 *   switching, then drop the old one.
 *
 * Returns a result for any request; throws only when called wrongly (no secret, a parsed
 * object for the body, bad options).
 */
export function verifyStandard(rawBody: RawBody, headers: HeaderSource, secrets: Secrets, opts?: StandardOptions): VerifyResult;

/**
 * Checks a Paycor-style notification: upper-case hex HMAC-SHA256 of the body keyed by the
 * registration's `Secret`, in `X-Paycor-Signature` (`opts.header` when the operator changed
 * HERALD_PAYCOR_SIGNATURE_HEADER).
 *
 * Pitfalls:
 * - Pass the raw body bytes. Herald's body is pure ASCII, non-ASCII text written as `\uXXXX`
 *   escapes; parsing and serialising it again turns them into UTF-8 and breaks the signature.
 * - No timestamp: nothing refuses a replay. Deduplicate on `EventId` (returned as `id`).
 * - A new `Secret` (by PUT) signs from the next attempt on, with no overlap: pass both while
 *   switching.
 */
export function verifyPaycor(rawBody: RawBody, headers: HeaderSource, secret: Secrets, opts?: SignatureHeaderOptions): VerifyResult;

/**
 * Checks a Gusto-style event: lower-case hex HMAC-SHA256 of the body keyed by the
 * subscription's verification token, in `X-Gusto-Signature`.
 *
 * Pitfalls:
 * - Pass the raw body bytes, never JSON parsed and serialised again.
 * - The verification request is signed with the token it carries, so it proves nothing by
 *   itself; sending the token back to Herald's verify call is the proof. Keep the token:
 *   every later event is signed with it.
 * - No timestamp: nothing refuses a replay. Deduplicate on `uuid` (returned as `id`).
 */
export function verifyGusto(rawBody: RawBody, headers: HeaderSource, verificationToken: Secrets, opts?: SignatureHeaderOptions): VerifyResult;

export interface ReadRawBodyOptions {
  /** Refuse a body larger than this (the promise rejects with code `HERALD_BODY_TOO_LARGE`). Default 8 MiB. */
  limitBytes?: number;
}

/**
 * The raw body of a Node `http` request (an Express `req` too). Uses `req.rawBody` or a
 * Buffer `req.body` when a middleware kept the bytes (`express.raw()`); rejects when a
 * parser has already consumed the body.
 */
export function readRawBody(req: IncomingMessage, opts?: ReadRawBodyOptions): Promise<Buffer>;
