// Shared pieces of Herald's route schemas, and the style every route follows.
//
// A route's `schema` is the one description of what it accepts and answers: Herald
// validates requests with it (src/http/schemaValidator.ts) and builds the OpenAPI
// documents from it (src/http/openapi.ts). So:
//
// - Every API route passes `schema: { summary, tags, params?, querystring?, body?, response }`.
//   A route without `tags` is left out of the documents, and the drift test
//   (test/openapi.test.ts) fails until it has them. Build it with `route({...})` below,
//   which adds the dialect's error answers, so each route only describes its own shapes.
// - Write plain JSON Schema objects (draft 2020-12, what OpenAPI 3.1 uses), built from the
//   helpers here: `str`, `int`, `bool`, `nullable`, `obj`, `arr`, `idParams`, `pageQuery`.
//   `obj` closes an object (`additionalProperties: false`): the admin and native APIs
//   refuse unknown fields, naming them; pass `{ open: true }` where a dialect ignores them.
// - A failed check becomes `ValidationError(field, message)` with the field in Herald's
//   own notation (`events[2].entity`, `Headers.X-Route`) and a message in Herald's words
//   (`is required`, `must be at most 200 characters`), so each dialect renders it in its
//   own error shape, exactly as the hand-written checks in validate.ts do. Add `x-message`
//   beside a `pattern` to say in words what the pattern wants.
// - Bodies are checked as sent, never coerced or stripped: a "1" is not a number and an
//   unknown field is refused (or, in an open object, passed on). Query strings and path
//   parameters arrive as text, so they are checked after coercion ("50" is the integer 50),
//   but the handler still receives the text and parses it with validate.ts (queryInt,
//   queryString), which is stricter than coercion ("1e2" is not a limit).
//   Make query objects open (`pageQuery` is): proxies and scripts add parameters of their own.
// - Each dialect keeps its rules around the check: the Paycor routes bring a body's field
//   names to the schema's letter case before it runs (ASP.NET binds them in any case) and
//   answer a token request's failures as OAuth errors; the Gusto routes answer field
//   errors as 422 and name the attribute, not its item.
// - What a schema cannot say stays in code: cross-field rules, catalog and tenant lookups,
//   URL safety, JSON depth, dates that do not exist. Keep the schema describing the
//   accepted shape, and the code refusing the rest.
// - Routes that serve pages rather than API (the dashboard, this reference) say `hide: true`.
// - `format` (uri, uuid, date-time) is an annotation for readers; the code checks those.
// - `response` documents what the handler sends; Herald serialises with JSON.stringify,
//   so a field the schema forgets is still sent (a test compares answers to schemas).
// - Optional fields that the code treats null as absent are `nullable(...)`.

// The swagger plugin's types add summary, tags and security to Fastify's route schema.
import type {} from '@fastify/swagger';
import type { FastifySchema } from 'fastify';
import { typeName } from '../domain/eventTypes.ts';

export type JsonSchema = Record<string, unknown>;

export type Dialect = 'native' | 'paycor' | 'gusto';

interface StrOpts { min?: number; max?: number; pattern?: RegExp | string; message?: string; format?: string; description?: string; enum?: readonly string[]; examples?: unknown[] }

const src = (p: RegExp | string) => (typeof p === 'string' ? p : p.source);

/** A string; `message` says what a `pattern` wants, in the words of the error. */
export function str(o: StrOpts = {}): JsonSchema {
  return {
    type: 'string',
    ...(o.min !== undefined ? { minLength: o.min } : {}),
    ...(o.max !== undefined ? { maxLength: o.max } : {}),
    ...(o.pattern !== undefined ? { pattern: src(o.pattern) } : {}),
    ...(o.message ? { 'x-message': o.message } : {}),
    ...(o.format ? { format: o.format } : {}),
    ...(o.enum ? { enum: [...o.enum] } : {}),
    ...(o.description ? { description: o.description } : {}),
    ...(o.examples ? { examples: o.examples } : {}),
  };
}

export function int(o: { min?: number; max?: number; default?: number; description?: string } = {}): JsonSchema {
  return {
    type: 'integer',
    ...(o.min !== undefined ? { minimum: o.min } : {}),
    ...(o.max !== undefined ? { maximum: o.max } : {}),
    ...(o.default !== undefined ? { default: o.default } : {}),
    ...(o.description ? { description: o.description } : {}),
  };
}

export const bool = (description?: string): JsonSchema => ({ type: 'boolean', ...(description ? { description } : {}) });

/** Also accepts null, which the code reads as "not given". */
export function nullable(s: JsonSchema): JsonSchema {
  const t = s.type;
  return { ...s, type: [...(Array.isArray(t) ? t : [t]), 'null'] };
}

/** An object with these properties; closed unless `open` (then unknown fields are allowed). */
export function obj(properties: Record<string, JsonSchema>, o: { required?: string[]; open?: boolean; description?: string } = {}): JsonSchema {
  return {
    type: 'object',
    properties,
    ...(o.required?.length ? { required: o.required } : {}),
    ...(o.open ? {} : { additionalProperties: false }),
    ...(o.description ? { description: o.description } : {}),
  };
}

export function arr(items: JsonSchema, o: { min?: number; max?: number; description?: string } = {}): JsonSchema {
  return {
    type: 'array',
    items,
    ...(o.min !== undefined ? { minItems: o.min } : {}),
    ...(o.max !== undefined ? { maxItems: o.max } : {}),
    ...(o.description ? { description: o.description } : {}),
  };
}

/** A map of string to string (custom headers, properties). */
export function stringMap(o: { maxEntries: number; keyPattern?: RegExp; valueMax?: number; description?: string }): JsonSchema {
  return {
    type: 'object',
    maxProperties: o.maxEntries,
    ...(o.keyPattern ? { propertyNames: { pattern: src(o.keyPattern), 'x-message': 'is not an allowed name' } } : {}),
    additionalProperties: { type: 'string', maxLength: o.valueMax ?? 1000 },
    ...(o.description ? { description: o.description } : {}),
  };
}

/** Any JSON object, passed on as is. */
export const anyObject = (description?: string): JsonSchema => ({ type: 'object', additionalProperties: true, ...(description ? { description } : {}) });

/** An ISO-8601 time as Herald writes it, or null. */
export const isoTime = (description?: string): JsonSchema => ({ type: ['string', 'null'], format: 'date-time', ...(description ? { description } : {}) });

/** Path parameters, each an id given as text. Ids that name nothing are a 404, not a 400. */
export function idParams(...names: string[]): JsonSchema {
  const list = names.length ? names : ['id'];
  return obj(Object.fromEntries(list.map((n) => [n, str({ min: 1, max: 200, description: `the ${n === 'id' ? 'resource' : n} id` })])), { required: list });
}

/** `?limit=&cursor=` for the newest-first pages of admin and native lists. */
export function pageQuery(extra: Record<string, JsonSchema> = {}, o: { defaultLimit?: number; maxLimit?: number } = {}): JsonSchema {
  return obj({
    limit: int({ min: 1, max: o.maxLimit ?? 500, default: o.defaultLimit ?? 50, description: 'how many items a page holds' }),
    cursor: str({ description: 'the next_cursor of the page before' }),
    ...extra,
  }, { open: true });
}

/** `{ data: [...], next_cursor }`, the shape of a paged list. */
export const pageOf = (item: JsonSchema): JsonSchema => obj({ data: arr(item), next_cursor: { type: ['string', 'null'], description: 'null on the last page' } }, { required: ['data', 'next_cursor'] });

/** `{ data: [...] }`, an unpaged list. */
export const listOf = (item: JsonSchema): JsonSchema => obj({ data: arr(item) }, { required: ['data'] });

// ---- error shapes, one per dialect ---------------------------------------------------

/** Herald's own error shape, used by the admin, native, portal and operational APIs. */
export const nativeErrorBody = obj({
  error: obj({
    code: str({ enum: ['invalid_request', 'unprocessable', 'unauthorized', 'not_found', 'conflict', 'internal'] }),
    message: str(),
    field: str({ description: 'the field at fault, when one is' }),
  }, { required: ['code', 'message'] }),
}, { required: ['error'], description: 'What went wrong, naming the field at fault' });

/** Paycor's error model: a 422 is answered as 400 in this dialect. */
export const paycorErrorBody = obj({
  CorrelationId: str({ format: 'uuid' }),
  Title: str(),
  Detail: str(),
  Source: { type: 'object', additionalProperties: { type: 'string' }, description: 'the field at fault, mapped to what is wrong with it' },
}, { required: ['CorrelationId', 'Title', 'Detail', 'Source'] });

/** Paycor's token endpoint answers OAuth errors, with its error model beside them. */
export const oauthErrorBody = obj({
  error: str({ enum: ['invalid_request', 'invalid_client', 'unsupported_grant_type'] }),
  error_description: str(),
  CorrelationId: str({ format: 'uuid' }),
  Title: str(),
  Detail: str(),
  Source: { type: 'object', additionalProperties: { type: 'string' } },
}, { required: ['error', 'error_description'] });

/** Gusto's error list: field errors are 422, a body that is not a JSON object is 400. */
export const gustoErrorBody = obj({
  errors: arr(obj({
    error_key: str({ description: 'the field at fault, or base' }),
    category: str({ enum: ['invalid_token', 'not_found', 'conflict', 'invalid_attribute_value', 'invalid_request', 'internal_error'] }),
    message: str(),
  }, { required: ['error_key', 'category', 'message'] })),
}, { required: ['errors'] });

const ERROR_BODY: Record<Dialect, JsonSchema> = { native: nativeErrorBody, paycor: paycorErrorBody, gusto: gustoErrorBody };

/** The error answers every route of a dialect may give. */
export function errorResponses(dialect: Dialect): Record<string, JsonSchema> {
  const body = ERROR_BODY[dialect];
  const as = (description: string) => ({ ...body, description });
  return {
    '4XX': as(dialect === 'gusto'
      ? 'Refused: 401 without a valid token, 404 for what does not exist or is not yours, 400 for a body that is not a JSON object, 422 naming the field at fault'
      : dialect === 'paycor'
        ? 'Refused: 401 without a valid key or token, 404 for what does not exist or is not yours, 400 naming the field at fault'
        : 'Refused: 401 without a valid token, 404 for what does not exist or is not yours, 400 or 422 naming the field at fault'),
    503: as('The store cannot be reached (the database is down or restarting): nothing was done; Retry-After says when to try again'),
    507: as('The disk holding the store is full: nothing was stored; Retry-After says when to try again'),
  };
}

export interface RouteDoc {
  summary: string;
  tags: string[];
  description?: string;
  params?: JsonSchema;
  querystring?: JsonSchema;
  body?: JsonSchema;
  /** Keyed by status code, e.g. `{ 200: view }`; `{ 204: noContent }` for an empty answer. */
  response: Record<string | number, JsonSchema>;
  /** `[]` for a route that needs no credentials (health checks); absent: the document's default. */
  security?: Record<string, string[]>[];
  /** The media type of a 2xx answer that is not JSON (Prometheus text, an event stream). */
  produces?: string[];
  consumes?: string[];
}

/** A route's schema with its dialect's error answers added. */
export function route(dialect: Dialect, d: RouteDoc): FastifySchema & { tags: string[]; summary: string } {
  const described = Object.fromEntries(Object.entries(d.response).map(([status, s]) => [status, s.description ? s : { ...s, description: STATUS_WORDS[status] ?? 'Done' }]));
  return { ...d, response: { ...described, ...errorResponses(dialect) } };
}

/** Each answer needs a description in OpenAPI; these are used when a route gives none. */
const STATUS_WORDS: Record<string, string> = { 200: 'OK', 201: 'Created', 202: 'Accepted: it happens in the background', 204: 'Done; no content' };

/** An empty answer (204). */
export const noContent: JsonSchema = { type: 'null', description: 'No content' };

// ---- common views, shared by more than one route --------------------------------------

export const NAME_PATTERN = { pattern: /^[A-Za-z][A-Za-z0-9_]{0,63}$/, message: 'must be a name of letters, digits and underscores' } as const;

/** An event type's full name, as the admin and native APIs write it. */
export const EVENT_TYPE_EXAMPLE = typeName('Employee', 'Add');

export const deliverySchema = obj({
  id: str({ format: 'uuid' }),
  tenant_id: str(),
  event_id: str({ format: 'uuid' }),
  subscription_id: str({ format: 'uuid' }),
  status: str({ description: 'pending, delivering, succeeded, failed, ...' }),
  in_flight: bool('a worker holds it right now'),
  attempts: int({ min: 0 }),
  next_attempt_at: isoTime(),
  last_status_code: { type: ['integer', 'null'] },
  last_error: { type: ['string', 'null'] },
  created_at: isoTime(),
  updated_at: isoTime(),
}, { open: true, required: ['id', 'tenant_id', 'event_id', 'subscription_id', 'status', 'attempts'] });

export const attemptSchema = obj({
  id: { type: ['integer', 'string'] },
  delivery_id: str({ format: 'uuid' }),
  attempt: int({ min: 1 }),
  started_at: isoTime(),
  duration_ms: { type: ['integer', 'number', 'null'] },
  status_code: { type: ['integer', 'null'], description: 'the receiver\'s status, null when no answer came' },
  error_kind: { type: ['string', 'null'] },
  error: { type: ['string', 'null'] },
  response_body: { type: ['string', 'null'], description: 'the first 1 KB of the answer' },
  worker: { type: ['string', 'null'] },
}, { open: true, required: ['id', 'delivery_id', 'attempt'] });

export const deliveryWithAttemptsSchema: JsonSchema = { ...deliverySchema, properties: { ...(deliverySchema.properties as object), attempt_log: arr(attemptSchema) } };

/** GET /healthz: the process answers. */
export const healthzSchema = route('native', {
  summary: 'Liveness: the process answers',
  tags: ['operations'],
  security: [],
  response: { 200: obj({ status: str({ enum: ['ok'] }) }, { required: ['status'] }) },
});
