#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { CliError } from './cli/common.ts';
import { registerDeliveries } from './cli/deliveries.ts';
import { registerListen } from './cli/listen.ts';
import { registerSend } from './cli/send.ts';
import { registerServer } from './cli/server.ts';
import { registerTenants } from './cli/tenants.ts';
import { registerVerify } from './cli/verify.ts';

const VERSION = '0.1.0';

async function main(argv: string[]): Promise<number> {
  let serving = false;
  const program = new Command('herald')
    .description('Herald: a self-hosted webhook notification service, and the client for one')
    .version(VERSION)
    // Usage mistakes exit 2 and are reported by commander itself; the rest is ours below.
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', '\nWith no command, `herald` runs `herald serve`. Each command has --help.');
  let json = false;
  program.hook('preAction', (_program, action) => { json = action.opts().json === true; });
  // Set before the commands are added, so each of them inherits it.
  registerServer(program, () => { serving = true; });
  registerTenants(program);
  registerSend(program);
  registerDeliveries(program);
  registerListen(program);
  registerVerify(program);

  // `npm start` runs `herald serve`; a bare `herald` does the same.
  const args = argv.slice(2).length === 0 ? ['serve'] : argv.slice(2);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // Help shown because a command group was given no command is a usage mistake too.
      return err.code === 'commander.help' && err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CliError) {
      process.stderr.write(json && err.detail !== undefined ? JSON.stringify(err.detail) + '\n' : `herald: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  // A command may have set the exit code it wants (verify: 1 for a signature that does not hold).
  return serving ? -1 : Number(process.exitCode ?? 0);
}

main(process.argv).then((code) => {
  if (code >= 0) process.exit(code);
}, (err) => {
  console.error('herald:', err instanceof Error ? err.message : err);
  process.exit(1);
});
