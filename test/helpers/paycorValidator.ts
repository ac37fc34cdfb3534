import { execFileSync, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The seed's C# Validate, step by step: .NET's ASCIIEncoding turns every character past
 * 0x7F (a surrogate pair counts as one) into '?', BitConverter.ToString gives upper-case
 * hex, and the header is upper-cased before the comparison.
 */
export function seedValidate(signedMessage: string, eventData: string, secretKey: string): boolean {
  const ascii = (s: string) => Buffer.from([...s].map((ch) => (ch.codePointAt(0)! < 0x80 ? ch.codePointAt(0)! : 0x3f)));
  const digest = createHmac('sha256', ascii(secretKey)).update(ascii(eventData)).digest('hex').toUpperCase();
  return digest === signedMessage.toUpperCase();
}

export const monoAvailable = spawnSync('mcs', ['--version']).status === 0 && spawnSync('mono', ['--version']).status === 0;

let compiled: string | null = null;

/** Compiles the seed's C# (once) and runs it on each case; answers its True/False for each. */
export function csharpValidate(cases: { signature: string; body: string; secret: string }[]): boolean[] {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cs-'));
  if (!compiled) {
    compiled = join(dir, 'PaycorValidate.exe');
    execFileSync('mcs', ['-out:' + compiled, new URL('../fixtures/PaycorValidate.cs', import.meta.url).pathname], { stdio: 'pipe' });
  }
  const dirs = cases.map((c, i) => {
    const d = join(dir, String(i));
    mkdirSync(d);
    writeFileSync(join(d, 'signature.txt'), c.signature);
    writeFileSync(join(d, 'body.txt'), c.body);
    writeFileSync(join(d, 'secret.txt'), c.secret);
    return d;
  });
  const out = execFileSync('mono', [compiled, ...dirs], { encoding: 'utf8' });
  return out.trim().split(/\r?\n/).map((l) => l.trim() === 'True');
}
