// Herald validates requests with the route schemas (the ones the OpenAPI documents show),
// but answers in its own words: a failure becomes ValidationError(field, message), which
// each dialect's error handler renders in its shape, as it does the hand-written checks.
//
// Fastify's default compiler is not used because it coerces bodies ("1" becomes 1),
// strips unknown fields instead of refusing them, and fills defaults: each would let a
// request through that Herald refuses. Here a body is checked exactly as sent; query
// strings and path parameters, which are text by nature, are checked after coercion on
// a copy, so the handler still sees the text it parses strictly itself.
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import { ValidationError } from '../domain/errors.ts';

// ajv ships CommonJS whose default export TypeScript cannot see through `import`.
type AjvClass = typeof import('ajv/dist/2020.js').default;
const Ajv2020 = createRequire(import.meta.url)('ajv/dist/2020.js') as AjvClass;

function makeAjv(coerce: boolean) {
  const ajv = new Ajv2020({
    allErrors: false, // the first failure, in the order the schema lists its fields
    coerceTypes: coerce,
    useDefaults: false,
    removeAdditional: false,
    verbose: true, // errors carry their schema, for `x-message` and limits
    validateFormats: false, // `format` is an annotation; the code checks URLs and times
    allowUnionTypes: true,
    strictTypes: false,
  });
  ajv.addKeyword('x-message');
  return ajv;
}

const bodyAjv = makeAjv(false);
const textAjv = makeAjv(true);

const ROOT_FIELD: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'headers' };

/** A JSON pointer as Herald names fields: `/events/2/entity` is `events[2].entity`. */
export function fieldName(pointer: string, extra?: string): string {
  const parts = pointer.split('/').slice(1).map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (extra !== undefined) parts.push(extra);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) && acc ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false', object: 'a JSON object', array: 'an array', null: 'null',
};

function typeMessage(e: ErrorObject, part: string): string {
  if (part === 'querystring' && Array.isArray(e.data)) return 'must be given once';
  const s = e.parentSchema ?? {};
  const types = String(e.params.type).split(',').filter((t) => t !== 'null');
  const words = types.map((t) => (t === 'array' && (s.items as { type?: unknown } | undefined)?.type === 'string' ? 'an array of strings' : TYPE_WORDS[t] ?? t));
  return `must be ${words.join(' or ')}`;
}

/** Herald's words for one failed keyword; `x-message` beside it says it better when given. */
function messageOf(e: ErrorObject, part: string): string {
  const s = (e.parentSchema ?? {}) as Record<string, unknown>;
  if (typeof s['x-message'] === 'string' && e.keyword !== 'required' && e.keyword !== 'additionalProperties') return s['x-message'];
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type': return typeMessage(e, part);
    case 'minLength': return p.limit === 1 ? 'must not be empty' : `must be at least ${p.limit} characters`;
    case 'maxLength': return `must be at most ${p.limit} characters`;
    case 'pattern': return 'has an invalid format';
    case 'enum': return `must be one of ${(p.allowedValues as unknown[]).join(', ')}`;
    case 'const': return `must be ${JSON.stringify(p.allowedValue)}`;
    case 'minItems': return p.limit === 1 ? 'must be a non-empty array' : `must hold at least ${p.limit} items`;
    case 'maxItems': return `must hold at most ${p.limit} items`;
    case 'maxProperties': return `must hold at most ${p.limit} entries`;
    case 'minProperties': return `must hold at least ${p.limit} entries`;
    case 'minimum': case 'maximum': case 'exclusiveMinimum': case 'exclusiveMaximum':
      if (s.type === 'integer' && typeof s.minimum === 'number' && typeof s.maximum === 'number') return `must be an integer from ${s.minimum} to ${s.maximum}`;
      return `must be ${{ minimum: 'at least', maximum: 'at most', exclusiveMinimum: 'more than', exclusiveMaximum: 'less than' }[e.keyword]} ${p.limit}`;
    default: return `is not valid (${e.message ?? e.keyword})`;
  }
}

/** The first schema failure as Herald's ValidationError, naming the field at fault. */
export function toValidationError(errors: ErrorObject[], part: string): ValidationError {
  // A property-name failure is reported twice (the name's own check, then propertyNames); the first says more.
  const e = errors[0]!;
  const p = e.params as Record<string, string>;
  const field = e.keyword === 'required' ? fieldName(e.instancePath, p.missingProperty)
    : e.keyword === 'additionalProperties' ? fieldName(e.instancePath, p.additionalProperty)
    : e.propertyName !== undefined ? fieldName(e.instancePath, e.propertyName)
    : fieldName(e.instancePath);
  const message = e.keyword === 'required' ? 'is required'
    : e.keyword === 'additionalProperties' ? 'is not a known field'
    : field === '' && part === 'body' && e.keyword === 'type' ? 'must be a JSON object'
    : messageOf(e, part);
  return new ValidationError(field || ROOT_FIELD[part] || part, message);
}

// Many routes share a schema (id parameters, paging): compiling each once keeps start-up short.
const cache = new Map<string, ValidateFunction>();
function compiled(schema: object, text: boolean): ValidateFunction {
  const key = `${text ? 'text' : 'body'}:${JSON.stringify(schema)}`;
  let v = cache.get(key);
  if (!v) cache.set(key, (v = (text ? textAjv : bodyAjv).compile(schema)));
  return v;
}

/** Fastify's validator compiler for every Herald route (set once on the root instance). */
export const heraldValidatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const part = httpPart ?? 'body';
  const text = part !== 'body';
  const validate = compiled(schema as object, text);
  return (data: unknown) => {
    // Coercion writes into the object it checks: give it a copy, keep the request's text.
    const checked = text && data !== null && typeof data === 'object' ? { ...(data as object) } : data;
    if (!validate(checked)) return { error: toValidationError(validate.errors ?? [], part) };
    const nul = nulField(data);
    return nul === null ? true : { error: new ValidationError(nul || ROOT_FIELD[part] || part, 'must not contain a NUL character (U+0000)') };
  };
};

/**
 * The first string (or key) holding U+0000, named as Herald names fields; null when none.
 * PostgreSQL cannot store NUL in text, so Herald refuses it on both engines alike rather
 * than answer one engine's write failure with a 500. Iterative: bodies may nest deeply.
 */
export function nulField(data: unknown): string | null {
  return hasNul(data) ? nulPath(data) : null;
}

/** Whether any string or key holds U+0000: the common answer, found without naming fields. */
function hasNul(data: unknown): boolean {
  const stack: unknown[] = [data];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return true;
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
    } else if (v !== null && typeof v === 'object') {
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        if (k.includes('\u0000')) return true;
        stack.push((v as Record<string, unknown>)[k]);
      }
    }
  }
  return false;
}

/** The field's name for nulField, once a NUL is known to be there. */
function nulPath(data: unknown): string | null {
  const stack: [unknown, string][] = [[data, '']];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return at;
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push([x, `${at}[${i}]`]));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        const field = at ? `${at}.${k}` : k;
        if (k.includes('\u0000')) return field;
        stack.push([x, field]);
      }
    }
  }
  return null;
}

/** Answers go out as the handler built them: the response schemas document, they do not filter. */
export const jsonSerializerCompiler = () => (data: unknown) => JSON.stringify(data);
