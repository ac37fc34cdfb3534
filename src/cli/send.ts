import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { adminToken, call, clientOptions, print, usageError, type ClientOptions } from './common.ts';

const TYPE_RE = /^([A-Za-z][A-Za-z0-9_]{0,63})\.([A-Za-z][A-Za-z0-9_]{0,63})$/;

function eventType(v: string): string {
  if (!TYPE_RE.test(v)) throw new InvalidArgumentError('must be Entity.Event, e.g. Employee.Add');
  return v;
}

interface SendOptions extends ClientOptions {
  tenant: string;
  type: string;
  entityId: string;
  data?: string;
  dataFile?: string;
  entityUri?: string;
  parentType?: string;
  parentId?: string;
  occurredAt?: string;
  idempotencyKey?: string;
}

/** The event's data: a JSON object from --data or --data-file (`-` is stdin). */
function readData(o: SendOptions): Record<string, unknown> | undefined {
  let text: string;
  let option: string;
  if (o.data !== undefined) {
    text = o.data;
    option = '--data';
  } else if (o.dataFile !== undefined) {
    option = '--data-file';
    try {
      text = readFileSync(o.dataFile === '-' ? 0 : o.dataFile, 'utf8');
    } catch (err) {
      throw usageError(`${option}: cannot read ${o.dataFile}: ${(err as Error).message}`);
    }
  } else {
    return undefined;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw usageError(`${option}: not valid JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw usageError(`${option}: must be a JSON object`);
  return v as Record<string, unknown>;
}

/** `herald send`: publish one event through the admin API. */
export function registerSend(program: Command): void {
  clientOptions(program.command('send'), 'admin')
    .description('publish an event to a tenant\'s subscriptions')
    .requiredOption('--tenant <id>', 'the tenant the event belongs to')
    .addOption(new Option('--type <Entity.Event>', 'the event type, from the catalog').makeOptionMandatory().argParser(eventType))
    .requiredOption('--entity-id <id>', 'the id of the entity the event is about')
    .addOption(new Option('--data <json>', 'the event\'s data, a JSON object').conflicts('dataFile'))
    .option('--data-file <path>', 'read the data from a file (- for stdin)')
    .option('--entity-uri <uri>', 'where the entity lives in your API')
    .option('--parent-type <name>', 'the parent entity\'s type')
    .option('--parent-id <id>', 'the parent entity\'s id')
    .option('--occurred-at <time>', 'when it happened: ISO-8601 (default: now)')
    .option('--idempotency-key <key>', 'publishing the same key again answers the first event')
    .addHelpText('after', '\nExamples:\n  herald send --tenant <tenant id> --type Employee.Add --entity-id 42 --data \'{"name":"José"}\'\n  herald send --tenant <tenant id> --type Payroll.paid --entity-id p-7 --data-file payroll.json')
    .action(async (o: SendOptions) => {
      const [, entity, event] = TYPE_RE.exec(o.type)!;
      const data = readData(o);
      const body: Record<string, unknown> = { tenant_id: o.tenant, entity, event, entity_id: o.entityId };
      if (data) body.data = data;
      if (o.entityUri !== undefined) body.entity_uri = o.entityUri;
      if (o.parentType !== undefined) body.parent_type = o.parentType;
      if (o.parentId !== undefined) body.parent_id = o.parentId;
      if (o.occurredAt !== undefined) body.occurred_at = o.occurredAt;
      if (o.idempotencyKey !== undefined) body.idempotency_key = o.idempotencyKey;
      const r = await call(o, adminToken(o), 'POST', '/admin/v1/events', body);
      print(o, r, () => `${r.duplicate ? 'already published' : 'published'} ${r.type} ${r.id}: ${r.deliveries} deliver${r.deliveries === 1 ? 'y' : 'ies'}`
        + (r.duplicate ? ' (this idempotency key was used before: nothing new was sent)' : ''));
    });
}
