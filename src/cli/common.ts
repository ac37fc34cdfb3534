import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';

/** A failure the CLI reports and exits with: 2 for a usage mistake, 1 for anything else. */
export class CliError extends Error {
  readonly exitCode: number;
  /** What `--json` prints instead of the message. */
  readonly detail: unknown;
  constructor(message: string, exitCode = 1, detail?: unknown) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.detail = detail;
  }
}

export const usageError = (message: string) => new CliError(message, 2);

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** Options every client command takes. */
export interface ClientOptions {
  url: string;
  token?: string;
  json?: boolean;
}

export function httpUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError('must be an absolute http(s) URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError('must be an http(s) URL');
  return v.replace(/\/+$/, '');
}

export function intIn(min: number, max: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return Number(v);
  };
}

/**
 * Adds `--url`, `--token` and `--json`. `who` says whose token: the operator's (admin
 * commands; with a fallback to a local Herald's data dir) or a tenant's api_token.
 */
export function clientOptions(cmd: Command, who: 'admin' | 'tenant'): Command {
  return cmd
    .addOption(new Option('--url <url>', 'Herald\'s base URL').env('HERALD_URL').default(DEFAULT_URL).argParser(httpUrl))
    .addOption(who === 'admin'
      ? new Option('--token <token>', 'the admin token (else <data dir>/admin-token of a local Herald: HERALD_DATA_DIR or ./data)').env('HERALD_ADMIN_TOKEN')
      : new Option('--token <token>', 'the tenant\'s api_token').env('HERALD_TOKEN'))
    .option('--json', 'print JSON for scripts instead of text');
}

/** The admin token: given, from the environment (through commander), or kept by a local Herald. */
export function adminToken(o: ClientOptions, env = process.env): string {
  if (o.token) return o.token;
  const file = join(resolve(env.HERALD_DATA_DIR || './data'), 'admin-token');
  try {
    const t = readFileSync(file, 'utf8').trim();
    if (t) return t;
  } catch {
    // Not beside a local Herald: say what to do below.
  }
  throw usageError(`no admin token: pass --token, set HERALD_ADMIN_TOKEN, or run beside a local Herald whose data dir holds admin-token (looked for ${file})`);
}

export function tenantToken(o: ClientOptions): string {
  if (o.token) return o.token;
  throw usageError('no api_token: pass --token or set HERALD_TOKEN (the tenant\'s api_token from `herald tenants create`)');
}

/** Herald's error body: `{ error: { code, message, field? } }`. */
interface HeraldErrorBody { error?: { code?: string; message?: string; field?: string } }

/** The CliError for a refused call, naming Herald's `field` and message. */
export function refusal(method: string, path: string, status: number, body: unknown): CliError {
  const e = (body as HeraldErrorBody | null)?.error;
  const what = e?.message ?? (typeof body === 'string' && body ? body.slice(0, 300) : `HTTP ${status}`);
  const field = e?.field ? ` (field: ${e.field})` : '';
  const hint = status === 401 ? ' — check the token (--token)' : '';
  return new CliError(`${method} ${path} was refused with ${status}: ${what}${field}${hint}`, 1, { error: { status, code: e?.code ?? null, message: what, field: e?.field ?? null } });
}

/** Calls Herald's JSON API and answers the parsed body; a non-2xx answer is a CliError. */
export async function call(o: ClientOptions, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(o.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: 'manual' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new CliError(`cannot reach Herald at ${o.url} (${why}); is it running? (--url, HERALD_URL)`, 1, { error: { status: null, code: 'unreachable', message: why, field: null } });
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: reported as text.
  }
  if (!res.ok) throw refusal(method, path.split('?')[0]!, res.status, parsed);
  return parsed;
}

/** Writes a value as JSON (scripts) or as the text `human` makes of it. */
export function print(o: { json?: boolean }, value: unknown, human: () => string): void {
  process.stdout.write(o.json ? JSON.stringify(value, null, 2) + '\n' : human() + '\n');
}

/** Columns padded to their widest cell. */
export function table(head: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [head, ...rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** A short local time for lines and tables: `2026-05-01 12:00:00`. */
export function shortTime(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
