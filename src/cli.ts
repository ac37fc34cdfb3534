#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig } from './config.ts';
import { Herald, makeLogger } from './herald.ts';
import { openStore, storeOptions } from './store/open.ts';

const USAGE = `usage: herald <command>

  serve     run Herald: HTTP API and delivery (the default)
  migrate   apply database migrations and exit

Settings come from the environment (see the README).`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const command = positionals[0] ?? 'serve';
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(`herald: ${(err as Error).message}`);
    return 2;
  }
  if (command === 'migrate') {
    const store = await openStore(storeOptions(config));
    try {
      const applied = await store.migrate();
      console.log(applied.length ? `applied migrations ${applied.join(', ')}` : 'the schema is up to date');
    } finally {
      await store.close();
    }
    return 0;
  }
  if (command !== 'serve') {
    console.error(USAGE);
    return 2;
  }
  const log = makeLogger(config.logLevel);
  if (config.adminTokenGenerated) {
    // Shown once, on the start that generated it; it is kept in the data dir.
    process.stdout.write(`\nHerald generated an admin token (kept in ${config.dataDir}/admin-token):\n\n  ${config.adminToken}\n\n`);
  }
  const herald = new Herald(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: no new claims, letting in-flight deliveries finish');
    herald.stop().then(() => process.exit(0), (err) => {
      log.error({ err }, 'stopping failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await herald.start();
  return -1;
}

main().then((code) => {
  if (code >= 0) process.exit(code);
}, (err) => {
  console.error('herald:', err instanceof Error ? err.message : err);
  process.exit(1);
});
