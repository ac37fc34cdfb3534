// Each dialect's error shape, checked the same way by every hostile-input suite.
import { documentFor } from '../../src/http/openapi.ts';
import type { RawAnswer } from './rawHttp.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Why an answer is not in its dialect's error shape, or null when it is. */
export function shapeProblem(path: string, a: RawAnswer): string | null {
  const b = a.json as any;
  if (b === undefined || b === null || typeof b !== 'object' || Array.isArray(b)) return `not a JSON object: ${a.text.slice(0, 200)}`;
  const dialect = documentFor(path.split('?')[0]!) ?? 'native';
  if (dialect === 'paycor') {
    const token = /^\/accounts\/v2\/common\/token/i.test(path);
    const keys = Object.keys(b).filter((k) => !(token && (k === 'error' || k === 'error_description'))).sort();
    if (keys.join() !== 'CorrelationId,Detail,Source,Title') return `Paycor error keys ${Object.keys(b).join()}`;
    if (!UUID_RE.test(b.CorrelationId) || typeof b.Title !== 'string' || typeof b.Detail !== 'string' || !b.Detail) return 'Paycor error members';
    if (typeof b.Source !== 'object' || b.Source === null || Array.isArray(b.Source)) return 'Paycor Source must be an object';
    if ((a.status === 400 || a.status === 413 || a.status === 415) && Object.keys(b.Source).length === 0) return 'a Paycor 400 must name its field in Source';
    return null;
  }
  if (dialect === 'gusto') {
    if (Object.keys(b).join() !== 'errors' || !Array.isArray(b.errors) || b.errors.length === 0) return 'Gusto errors list';
    for (const e of b.errors) {
      if (Object.keys(e).sort().join() !== 'category,error_key,message') return `Gusto error keys ${Object.keys(e).join()}`;
      if (typeof e.error_key !== 'string' || typeof e.category !== 'string' || typeof e.message !== 'string' || !e.message) return 'Gusto error members';
    }
    return null;
  }
  if (Object.keys(b).join() !== 'error') return `Herald error keys ${Object.keys(b).join()}`;
  const e = b.error;
  if (typeof e?.code !== 'string' || typeof e.message !== 'string' || !e.message) return 'Herald error members';
  if (e.field !== undefined && typeof e.field !== 'string') return 'Herald error.field must be a string';
  if ([400, 413, 415, 422].includes(a.status) && !e.field) return `a ${a.status} must name its field`;
  return null;
}

