// Every file in test/chaos/scenarios/ that exports `scenarios` is part of the suite: helpers
// add scenarios by adding files, and no list needs editing.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Scenario } from './harness.ts';

export async function loadScenarios(): Promise<Scenario[]> {
  const dir = join(import.meta.dirname, 'scenarios');
  const out: Scenario[] = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts')).sort()) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { scenarios?: Scenario[] };
    out.push(...(mod.scenarios ?? []));
  }
  return out;
}
