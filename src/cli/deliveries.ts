import { type Command, InvalidArgumentError, Option } from 'commander';
import { DELIVERY_STATES } from '../domain/states.ts';
import { adminToken, call, clientOptions, intIn, print, shortTime, table, type ClientOptions } from './common.ts';

const TYPE_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}\.[A-Za-z][A-Za-z0-9_]{0,63}$/;

function eventType(v: string): string {
  if (!TYPE_RE.test(v)) throw new InvalidArgumentError('must be Entity.Event, e.g. Employee.Add');
  return v;
}

interface ListOptions extends ClientOptions {
  tenant?: string;
  subscription?: string;
  event?: string;
  type?: string;
  status?: string;
  limit: number;
  cursor?: string;
}

const lastResult = (d: any) => (d.last_status_code ?? d.last_error ?? null);

/** `herald deliveries list|show|retry`: the delivery record, through the admin API. */
export function registerDeliveries(program: Command): void {
  const deliveries = program.command('deliveries').description('list, inspect and retry deliveries (admin API)');

  clientOptions(deliveries.command('list'), 'admin')
    .description('list deliveries, newest first')
    .option('--tenant <id>', 'only this tenant\'s')
    .option('--subscription <id>', 'only this subscription\'s')
    .option('--event <id>', 'only this event\'s')
    .addOption(new Option('--type <Entity.Event>', 'only this event type\'s').argParser(eventType))
    .addOption(new Option('--status <status>', 'only deliveries in this state').choices(DELIVERY_STATES))
    .addOption(new Option('--limit <n>', 'how many').default(50).argParser(intIn(1, 500)))
    .option('--cursor <cursor>', 'the next page: the cursor the previous page printed')
    .addHelpText('after', '\nExamples:\n  herald deliveries list --status failed --limit 20\n  herald deliveries list --tenant <tenant id> --json')
    .action(async (o: ListOptions) => {
      const q = new URLSearchParams();
      const add = (k: string, v: string | number | undefined) => { if (v !== undefined) q.set(k, String(v)); };
      add('tenant_id', o.tenant);
      add('subscription_id', o.subscription);
      add('event_id', o.event);
      add('event_type', o.type);
      add('status', o.status);
      add('limit', o.limit);
      add('cursor', o.cursor);
      const r = await call(o, adminToken(o), 'GET', `/admin/v1/deliveries?${q}`);
      print(o, r, () => {
        if (r.data.length === 0) return 'no deliveries match';
        const rows = r.data.map((d: any) => [d.id, d.status + (d.in_flight ? ' (in flight)' : ''), d.attempts, lastResult(d), d.event_type ?? null, d.event_id, d.subscription_id, shortTime(d.created_at)]);
        const more = r.next_cursor ? `\nmore: --cursor ${r.next_cursor}` : '';
        return table(['id', 'status', 'attempts', 'last', 'type', 'event', 'subscription', 'created'], rows) + more;
      });
    });

  clientOptions(deliveries.command('show').argument('<id>', 'the delivery id'), 'admin')
    .description('show one delivery and each of its attempts')
    .addHelpText('after', '\nExample:\n  herald deliveries show <delivery id>')
    .action(async (id: string, o: ClientOptions) => {
      const d = await call(o, adminToken(o), 'GET', `/admin/v1/deliveries/${encodeURIComponent(id)}`);
      print(o, d, () => [
        `delivery ${d.id}: ${d.status}${d.in_flight ? ' (in flight)' : ''}, ${d.attempts} attempt(s)${d.next_attempt_at ? `, next at ${shortTime(d.next_attempt_at)}` : ''}`,
        `event ${d.event_id}${d.event_type ? ` (${d.event_type})` : ''} to subscription ${d.subscription_id}`,
        ...(d.attempt_log.length ? ['', table(['attempt', 'started', 'status', 'ms', 'error', 'answer'],
          d.attempt_log.map((a: any) => [a.attempt, shortTime(a.started_at), a.status_code, a.duration_ms,
            a.error_kind ? `${a.error_kind}${a.error ? `: ${a.error}` : ''}` : null, (a.response_body ?? '').replace(/\s+/g, ' ').slice(0, 60)]))] : []),
      ].join('\n'));
    });

  clientOptions(deliveries.command('retry').argument('<id>', 'the delivery id'), 'admin')
    .description('send a delivery again now (one more attempt, even after it failed)')
    .addHelpText('after', '\nExample:\n  herald deliveries retry <delivery id>')
    .action(async (id: string, o: ClientOptions) => {
      const d = await call(o, adminToken(o), 'POST', `/admin/v1/deliveries/${encodeURIComponent(id)}/retry`);
      print(o, d, () => `delivery ${d.id} is due now (${d.attempts} attempt(s) so far)`);
    });
}
