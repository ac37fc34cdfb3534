import type { Command } from 'commander';
import { adminToken, call, clientOptions, print, shortTime, table, type ClientOptions } from './common.ts';

/** `herald tenants create|list`: the operator's tenants, through the admin API. */
export function registerTenants(program: Command): void {
  const tenants = program.command('tenants').description('create and list tenants (admin API)');

  clientOptions(tenants.command('create'), 'admin')
    .description('create a tenant; its credentials are shown only in this answer')
    .requiredOption('--name <name>', 'the tenant\'s name')
    .addHelpText('after', '\nExample:\n  herald tenants create --name Acme')
    .action(async (o: ClientOptions & { name: string }) => {
      const t = await call(o, adminToken(o), 'POST', '/admin/v1/tenants', { name: o.name });
      print(o, t, () => [
        `created tenant ${t.id} "${t.name}" (number ${t.number})`,
        '',
        'Its credentials, shown only now: keep them somewhere safe.',
        table(['credential', 'value'], Object.entries(t.credentials as Record<string, string>)),
        '',
        `Listen to its deliveries:  herald listen --token ${t.credentials.api_token} --forward-to http://localhost:3000/hook`,
      ].join('\n'));
    });

  clientOptions(tenants.command('list'), 'admin')
    .description('list the tenants (without credentials)')
    .addHelpText('after', '\nExample:\n  herald tenants list --json')
    .action(async (o: ClientOptions) => {
      const r = await call(o, adminToken(o), 'GET', '/admin/v1/tenants');
      print(o, r, () => (r.data.length === 0 ? 'no tenants yet: herald tenants create --name <name>'
        : table(['id', 'number', 'name', 'created'], r.data.map((t: any) => [t.id, t.number, t.name, shortTime(t.created_at)]))));
    });
}
