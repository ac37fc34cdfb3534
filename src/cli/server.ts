import type { Command } from 'commander';
import { loadConfig, SETTINGS, type Config } from '../config.ts';
import { CliError } from './common.ts';

const settingsHelp = () => '\nSettings, read from the environment (or the JSON file HERALD_CONFIG names):\n'
  + Object.entries(SETTINGS).map(([k, v]) => `  ${k.padEnd(38)} ${v}`).join('\n');

function config(): Config {
  try {
    return loadConfig();
  } catch (err) {
    // A malformed setting is a usage mistake: the message names it.
    throw new CliError((err as Error).message, 2);
  }
}

/** `herald serve` and `herald migrate`: the process itself. */
export function registerServer(program: Command, onServing: () => void): void {
  program.command('serve')
    .description('run Herald: HTTP API and delivery (the default command)')
    .addHelpText('after', settingsHelp)
    .action(async () => {
      const c = config();
      const { Herald, makeLogger } = await import('../herald.ts');
      const log = makeLogger(c.logLevel);
      if (c.adminTokenGenerated) {
        // Shown once, on the start that generated it; it is kept in the data dir.
        process.stdout.write(`\nHerald generated an admin token (kept in ${c.dataDir}/admin-token):\n\n  ${c.adminToken}\n\n`);
      }
      const herald = new Herald(c, log);
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
      onServing();
    });

  program.command('migrate')
    .description('apply the database migrations and exit (serve applies them too)')
    .addHelpText('after', settingsHelp)
    .action(async () => {
      const c = config();
      const { openStore, storeOptions } = await import('../store/open.ts');
      const store = await openStore(storeOptions(c));
      try {
        const applied = await store.migrate();
        console.log(applied.length ? `applied migrations ${applied.join(', ')}` : 'the schema is up to date');
      } finally {
        await store.close();
      }
    });
}
