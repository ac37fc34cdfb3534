import { ValidationError } from '../domain/errors.ts';

// Small, explicit validators: each failure names the field at fault, in the caller's own
// naming (a dialect passes its own field names), so every dialect can render it.

export type Obj = Record<string, unknown>;

export function objectBody(body: unknown, field = 'body'): Obj {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ValidationError(field, 'must be a JSON object');
  return body as Obj;
}

const at = (prefix: string, key: string) => (prefix ? `${prefix}.${key}` : key);

export function onlyKeys(o: Obj, allowed: readonly string[], prefix = ''): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new ValidationError(at(prefix, k), 'is not a known field');
}

interface StrOpts { min?: number; max?: number; pattern?: RegExp; patternMessage?: string; prefix?: string }

export function optString(o: Obj, key: string, opts: StrOpts = {}): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const f = at(opts.prefix ?? '', key);
  if (typeof v !== 'string') throw new ValidationError(f, 'must be a string');
  const min = opts.min ?? 0;
  const max = opts.max ?? 1000;
  if (v.length < min) throw new ValidationError(f, min === 1 ? 'must not be empty' : `must be at least ${min} characters`);
  if (v.length > max) throw new ValidationError(f, `must be at most ${max} characters`);
  if (opts.pattern && !opts.pattern.test(v)) throw new ValidationError(f, opts.patternMessage ?? 'has an invalid format');
  return v;
}

export function reqString(o: Obj, key: string, opts: StrOpts = {}): string {
  const v = optString(o, key, { min: 1, ...opts });
  if (v === undefined) throw new ValidationError(at(opts.prefix ?? '', key), 'is required');
  return v;
}

/** An id given as a string or an integer, kept as a string. */
export function optId(o: Obj, key: string, prefix = ''): string | undefined {
  const v = o[key];
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  return optString(o, key, { min: 1, max: 200, prefix });
}

export function optBool(o: Obj, key: string, prefix = ''): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new ValidationError(at(prefix, key), 'must be true or false');
  return v;
}

export function optStringArray(o: Obj, key: string, opts: { maxItems?: number; itemMax?: number; prefix?: string } = {}): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const f = at(opts.prefix ?? '', key);
  if (!Array.isArray(v)) throw new ValidationError(f, 'must be an array of strings');
  if (v.length > (opts.maxItems ?? 100)) throw new ValidationError(f, `must hold at most ${opts.maxItems ?? 100} items`);
  v.forEach((s, i) => {
    if (typeof s !== 'string' || s.length === 0) throw new ValidationError(`${f}[${i}]`, 'must be a non-empty string');
    if (s.length > (opts.itemMax ?? 200)) throw new ValidationError(`${f}[${i}]`, `must be at most ${opts.itemMax ?? 200} characters`);
  });
  return v as string[];
}

export function optObject(o: Obj, key: string, prefix = ''): Obj | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new ValidationError(at(prefix, key), 'must be a JSON object');
  return v as Obj;
}

/** Depth of nested objects and arrays, without recursion (a hostile body may nest thousands deep). */
export function jsonDepth(v: unknown, limit: number): number {
  const isContainer = (x: unknown): x is object => x !== null && typeof x === 'object';
  let depth = 0;
  let level = [v].filter(isContainer);
  while (level.length > 0 && depth <= limit) {
    depth++;
    level = level.flatMap((x) => Object.values(x).filter(isContainer));
  }
  return depth;
}

/** A map of string to string, with bounded size. */
export function optStringMap(o: Obj, key: string, opts: { maxEntries?: number; keyPattern?: RegExp; prefix?: string } = {}): Record<string, string> | undefined {
  const m = optObject(o, key, opts.prefix);
  if (!m) return undefined;
  const f = at(opts.prefix ?? '', key);
  const entries = Object.entries(m);
  if (entries.length > (opts.maxEntries ?? 50)) throw new ValidationError(f, `must hold at most ${opts.maxEntries ?? 50} entries`);
  for (const [k, v] of entries) {
    if (opts.keyPattern && !opts.keyPattern.test(k)) throw new ValidationError(`${f}.${k}`, 'is not an allowed name');
    if (typeof v !== 'string' || v.length > 1000) throw new ValidationError(`${f}.${k}`, 'must be a string of at most 1000 characters');
  }
  return m as Record<string, string>;
}

/** A query-string integer within bounds. */
export function queryInt(q: Obj, key: string, def: number, min: number, max: number): number {
  const v = q[key];
  if (v === undefined || v === '') return def;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ValidationError(key, `must be an integer from ${min} to ${max}`);
  return n;
}

export function queryString(q: Obj, key: string): string | undefined {
  const v = q[key];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new ValidationError(key, 'must be given once');
  return v;
}
