// `herald verify`: is this captured request really from Herald? It answers with the same
// receiver SDK that subscribers import (herald/verify), so the command and the library
// cannot disagree.
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_TOLERANCE_SECONDS, verifyGusto, verifyPaycor, verifyStandard, type VerifyResult } from '../verify.js';

export const SCHEMES = ['standard', 'paycor', 'gusto'] as const;
export type Scheme = (typeof SCHEMES)[number];

/** Exit codes: the signature holds, it does not, the command was used wrongly. */
export const EXIT = { valid: 0, invalid: 1, usage: 2 } as const;

/** Thrown for input the command cannot judge at all (an unreadable file, no headers). */
export class UsageError extends Error {}

export interface ParsedRequest {
  method: string | null;
  path: string | null;
  /** Lower-case names; a repeated header keeps every value. */
  headers: Record<string, string[]>;
  body: Buffer;
  /** The body ran to the end of the input (no Content-Length bounded it). */
  unbounded: boolean;
  notes: string[];
}

/**
 * A raw HTTP request as bytes: an optional request line, header lines, a blank line, the
 * body. CRLF or LF line ends. A Content-Length, when present, says where the body stops,
 * so that a newline an editor added at the end of the file is not taken for body.
 */
export function parseRequest(raw: Buffer): ParsedRequest {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  let headEnd: number;
  let sep: number;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) { headEnd = crlf; sep = 4; } else if (lf >= 0) { headEnd = lf; sep = 2; } else {
    throw new UsageError('no blank line after the headers: the request must be headers, a blank line, then the body');
  }
  const lines = raw.subarray(0, headEnd).toString('latin1').split(/\r?\n/);
  let method: string | null = null;
  let path: string | null = null;
  const requestLine = /^([A-Z]+) (\S+) HTTP\/\d(?:\.\d)?$/.exec(lines[0] ?? '');
  if (requestLine) {
    method = requestLine[1]!;
    path = requestLine[2]!;
    lines.shift();
  }
  const headers: Record<string, string[]> = {};
  let last: string[] | null = null;
  lines.forEach((line, i) => {
    if (/^[ \t]/.test(line) && last) {
      // An obsolete folded continuation of the previous header's value.
      last[last.length - 1] += ' ' + line.trim();
      return;
    }
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!m) throw new UsageError(`line ${i + (requestLine ? 2 : 1)} is not a header ("Name: value"): ${JSON.stringify(line.slice(0, 80))}`);
    const name = m[1]!.toLowerCase();
    last = headers[name] ??= [];
    last.push(m[2]!);
  });
  if (Object.keys(headers).length === 0) throw new UsageError('the request has no headers');
  if (headers['transfer-encoding']?.some((v) => /chunked/i.test(v))) {
    throw new UsageError('chunked bodies are not supported: save the body as it was after de-chunking, with a Content-Length header');
  }
  let body = raw.subarray(headEnd + sep);
  const notes: string[] = [];
  let unbounded = true;
  const cl = headers['content-length']?.[0];
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new UsageError(`Content-Length is not a number: ${JSON.stringify(cl)}`);
    const n = Number(cl);
    if (body.length >= n) {
      if (body.length > n) notes.push(`ignored ${body.length - n} byte(s) after the Content-Length of ${n}`);
      body = body.subarray(0, n);
      unbounded = false;
    } else {
      notes.push(`the body is ${body.length} bytes, shorter than its Content-Length of ${n}: the file may be cut short or edited`);
    }
  }
  return { method, path, headers, body, unbounded, notes };
}

export interface VerifyOptions {
  scheme: Scheme;
  secrets: string[];
  signatureHeader?: string;
  toleranceSeconds?: number;
}

export interface Verdict {
  result: VerifyResult;
  notes: string[];
}

/** Runs the SDK on a parsed request. */
export function judge(req: ParsedRequest, o: VerifyOptions): Verdict {
  const check = (body: Buffer): VerifyResult => {
    switch (o.scheme) {
      case 'standard': return verifyStandard(body, req.headers, o.secrets, { toleranceSeconds: o.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS });
      case 'paycor': return verifyPaycor(body, req.headers, o.secrets, { header: o.signatureHeader });
      case 'gusto': return verifyGusto(body, req.headers, o.secrets, { header: o.signatureHeader });
    }
  };
  const notes = [...req.notes];
  const result = check(req.body);
  // A file saved by an editor often ends with a newline that was never part of the body.
  if (!result.ok && result.reason === 'no_matching_signature' && req.unbounded) {
    const trimmed = req.body.subarray(0, req.body.length - (req.body.at(-1) === 0x0a ? (req.body.at(-2) === 0x0d ? 2 : 1) : 0));
    if (trimmed.length < req.body.length) {
      const again = check(trimmed);
      if (again.ok || again.reason !== 'no_matching_signature') {
        return { result: again, notes: [...notes, 'the signature is over the body without the line break that ends the file (add a Content-Length header to say where the body ends)'] };
      }
    }
  }
  return { result, notes };
}

async function readInput(file: string | undefined): Promise<Buffer> {
  const stdin = file === undefined || file === '-';
  try {
    if (!stdin) return readFileSync(file);
    // Not readFileSync(0): it fails with EAGAIN when the parent left stdin non-blocking.
    if (process.stdin.isTTY) process.stderr.write('reading the request from stdin; end it with Ctrl-D\n');
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  } catch (err) {
    throw new UsageError(`cannot read ${stdin ? 'stdin' : file}: ${(err as Error).message}`);
  }
}

function secretsFrom(opts: { secret?: string[]; secretFile?: string[] }): string[] {
  const secrets = [...(opts.secret ?? [])];
  for (const f of opts.secretFile ?? []) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --secret-file ${f}: ${(err as Error).message}`);
    }
    const lines = text.split(/\r?\n/).filter((l) => l !== '');
    if (lines.length === 0) throw new UsageError(`--secret-file ${f} holds no secret`);
    secrets.push(...lines);
  }
  if (secrets.length === 0) throw new UsageError('give the secret with --secret (or --secret-file); repeat it to try several, as during a rotation');
  if (secrets.includes('')) throw new UsageError('--secret is empty');
  return secrets;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function seconds(v: string): number {
  if (!/^\d+(\.\d+)?$/.test(v)) throw new InvalidArgumentError('a number of seconds, 0 or more');
  return Number(v);
}

interface Flags {
  scheme: Scheme;
  secret?: string[];
  secretFile?: string[];
  file?: string;
  signatureHeader?: string;
  toleranceSeconds?: number;
  ignoreTimestamp?: boolean;
  json?: boolean;
}

/** Prints the verdict; answers the exit code. */
async function run(flags: Flags, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let verdict: Verdict;
  try {
    const secrets = secretsFrom(flags);
    if (flags.signatureHeader !== undefined && flags.scheme === 'standard') throw new UsageError('--signature-header is for the paycor and gusto schemes');
    if ((flags.toleranceSeconds !== undefined || flags.ignoreTimestamp) && flags.scheme !== 'standard') throw new UsageError('--tolerance-seconds and --ignore-timestamp are for the standard scheme: the others carry no timestamp');
    const req = parseRequest(await readInput(flags.file));
    verdict = judge(req, {
      scheme: flags.scheme,
      secrets,
      signatureHeader: flags.signatureHeader,
      toleranceSeconds: flags.ignoreTimestamp ? Infinity : flags.toleranceSeconds,
    });
  } catch (e) {
    if (e instanceof UsageError) {
      err(`herald verify: ${e.message}\n`);
      return EXIT.usage;
    }
    throw e;
  }
  const { result, notes } = verdict;
  // A secret that cannot be one of the scheme's is the caller's mistake, not the request's.
  if (!result.ok && result.reason === 'bad_secret') {
    err(`herald verify: ${result.message}\n`);
    return EXIT.usage;
  }
  if (flags.json) {
    out(JSON.stringify(result.ok
      ? { valid: true, scheme: flags.scheme, id: result.id ?? null, timestamp: result.timestamp ?? null, notes }
      : { valid: false, scheme: flags.scheme, reason: result.reason, message: result.message, notes }) + '\n');
  } else if (result.ok) {
    const about = [result.id !== undefined ? `id ${result.id}` : null, result.timestamp !== undefined ? `timestamp ${result.timestamp} (${new Date(result.timestamp * 1000).toISOString()})` : null].filter(Boolean);
    out(['valid', ...(about.length ? [`  ${about.join(', ')}`] : []), ...notes.map((n) => `  note: ${n}`)].join('\n') + '\n');
  } else {
    out([`invalid: ${result.reason}`, `  ${result.message}`, ...notes.map((n) => `  note: ${n}`)].join('\n') + '\n');
  }
  return result.ok ? EXIT.valid : EXIT.invalid;
}

/** Adds `herald verify` to the program. Its action is async: parse with `parseAsync`. It sets process.exitCode rather than exiting. */
export function registerVerify(program: Command): void {
  const cmd = program
    .command('verify')
    .description('check the signature of a webhook request captured from Herald (exit 0 valid, 1 invalid, 2 usage error)')
    .addOption(new Option('--scheme <scheme>', 'signature scheme: standard (native endpoints), paycor or gusto').choices(SCHEMES).makeOptionMandatory())
    .option('--secret <secret>', 'the endpoint secret (whsec_...), Paycor Secret or Gusto verification token; repeat to try several', collect)
    .option('--secret-file <path>', 'read secrets from a file, one a line, to keep them out of the shell history; repeatable', collect)
    .option('--file <path>', 'the request: request line (optional), headers, a blank line, the body; - or none for stdin')
    .option('--signature-header <name>', 'paycor and gusto: the header holding the signature (default X-Paycor-Signature / X-Gusto-Signature)')
    .option('--tolerance-seconds <seconds>', `standard: largest age (or lead) of webhook-timestamp accepted (default ${DEFAULT_TOLERANCE_SECONDS})`, seconds)
    .option('--ignore-timestamp', 'standard: check the signature only, for requests captured long ago')
    .option('--json', 'print one JSON object: { valid, scheme, id, timestamp } or { valid, scheme, reason, message }')
    .addHelpText('after', `
Examples:
  herald verify --scheme standard --secret whsec_... --file request.txt
  herald verify --scheme gusto --secret-file token.txt --json < request.txt`);
  // Usage errors exit 2 here, so a script can tell "invalid" (1) from "called wrongly".
  cmd.exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : EXIT.usage));
  cmd.action(async (flags: Flags) => {
    process.exitCode = await run(flags, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
  });
}
