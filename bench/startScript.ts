// How `npm start` runs Herald, read from package.json, so that the bench runs it the same way:
// the node flags (the heap's sizes) and the environment the script sets before `node`
// (MALLOC_ARENA_MAX).
import { readFileSync } from 'node:fs';

const words = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts.start as string).split(/\s+/);
const nodeAt = words.indexOf('node');

/** The node flags of the start script. */
export const START_FLAGS: string[] = words.filter((w) => w.startsWith('--'));

/** The variables the start script sets for node (`NAME=value` before `node`). */
export const START_ENV: Record<string, string> = Object.fromEntries(
  words.slice(0, Math.max(0, nodeAt)).filter((w) => /^[A-Z_][A-Z0-9_]*=/.test(w)).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]),
);
