// Schemas of the admin API's routes (src/http/admin.ts), in the style of schemas.ts.
import {
  anyObject, arr, bool, deliverySchema, deliveryWithAttemptsSchema, idParams, int, isoTime, listOf, NAME_PATTERN, noContent, nullable, obj,
  route, str, type JsonSchema,
} from './schemas.ts';

const name = (description: string) => str({ min: 1, max: 64, ...NAME_PATTERN, description });

const tenant = obj({
  id: str(),
  name: str(),
  number: int({ description: 'the tenant\'s number, as Paycor-style notifications carry it' }),
  client_id: str(),
  created_at: isoTime(),
}, { open: true, required: ['id', 'name', 'number', 'client_id', 'created_at'] });

const credentials = obj({
  client_id: str({ description: 'Paycor-style OAuth client id' }),
  client_secret: str({ description: 'Paycor-style OAuth client secret' }),
  subscription_key: str({ description: 'Paycor-style Ocp-Apim-Subscription-Key' }),
  api_token: str({ description: 'Bearer token of the native API, and Token of the Gusto-style API' }),
}, { required: ['client_id', 'client_secret', 'subscription_key', 'api_token'], description: 'Shown once: Herald keeps only their hashes' });

const eventType = obj({
  type: str({ examples: ['Employee.Add'] }),
  entity: str(),
  event: str(),
  description: str(),
}, { open: true, required: ['type', 'entity', 'event', 'description'] });

/** One event to publish; a batch holds up to 1,000. */
const newEvent = obj({
  tenant_id: str({ min: 1, max: 64, description: 'the tenant whose subscriptions receive it' }),
  entity: name('what changed, e.g. Employee'),
  event: name('how it changed, e.g. Add'),
  entity_id: { type: ['string', 'integer'], minLength: 1, maxLength: 200, description: 'the changed record\'s id' },
  entity_uri: nullable(str({ max: 2000, description: 'where the subscriber can read the record' })),
  parent_type: nullable(name('the owning record\'s kind, e.g. LegalEntity')),
  parent_id: { type: ['string', 'integer', 'null'], minLength: 1, maxLength: 200 },
  data: nullable(anyObject('the payload, at most 32 levels deep and 256 KB of JSON')),
  occurred_at: {
    type: ['string', 'number', 'null'],
    pattern: '^\\d{4}-\\d{2}-\\d{2}T',
    minimum: 0,
    exclusiveMaximum: 1e11,
    'x-message': 'must be an ISO-8601 date-time or unix seconds',
    description: 'an ISO-8601 date-time or unix seconds; default: now',
  },
  idempotency_key: nullable(str({ min: 1, max: 200, description: 'a second publish with the same key is answered as a duplicate and delivers nothing' })),
}, { required: ['tenant_id', 'entity', 'event', 'entity_id'] });

const event = obj({
  id: str({ format: 'uuid' }),
  tenant_id: str(),
  type: str(),
  entity: str(),
  event: str(),
  entity_id: str(),
  entity_uri: { type: ['string', 'null'] },
  parent_type: { type: ['string', 'null'] },
  parent_id: { type: ['string', 'null'] },
  data: anyObject(),
  occurred_at: isoTime(),
  created_at: isoTime(),
  idempotency_key: { type: ['string', 'null'] },
}, { open: true, required: ['id', 'tenant_id', 'type', 'entity_id', 'data'] });

const published: JsonSchema = {
  ...event,
  properties: { ...(event.properties as object), deliveries: int({ min: 0, description: 'how many subscriptions it goes to' }), duplicate: bool('the idempotency key was seen before; nothing new was written') },
};

const TAG_TENANTS = ['tenants'];
const TAG_CATALOG = ['event catalog'];
const TAG_EVENTS = ['events'];
const TAG_DELIVERIES = ['deliveries'];

export const adminSchemas = {
  createTenant: route('native', {
    summary: 'Create a tenant and its credentials',
    tags: TAG_TENANTS,
    body: obj({ name: str({ min: 1, max: 200 }) }, { required: ['name'] }),
    response: { 201: { ...tenant, properties: { ...(tenant.properties as object), credentials } } },
  }),
  listTenants: route('native', { summary: 'List tenants', tags: TAG_TENANTS, response: { 200: listOf(tenant) } }),
  getTenant: route('native', { summary: 'Get a tenant', tags: TAG_TENANTS, params: idParams(), response: { 200: tenant } }),
  deleteTenant: route('native', { summary: 'Delete a tenant with its subscriptions', tags: TAG_TENANTS, params: idParams(), response: { 204: noContent } }),
  listEventTypes: route('native', { summary: 'List the event catalog', tags: TAG_CATALOG, response: { 200: listOf(eventType) } }),
  putEventType: route('native', {
    summary: 'Add an event type to the catalog, or change its description',
    tags: TAG_CATALOG,
    body: obj({ entity: name('e.g. Employee'), event: name('e.g. Add'), description: nullable(str({ max: 500 })) }, { required: ['entity', 'event'] }),
    response: { 201: { ...eventType, description: 'Added' }, 200: { ...eventType, description: 'It was there: its description is updated' } },
  }),
  publish: route('native', {
    summary: 'Publish an event',
    description: 'Written with one delivery per matching subscription in one transaction. The event type must be in the catalog and the tenant must exist (422 otherwise).',
    tags: TAG_EVENTS,
    body: newEvent,
    response: { 202: published },
  }),
  publishBatch: route('native', {
    summary: 'Publish up to 1,000 events at once',
    description: 'All or nothing: one bad event refuses the batch, naming it (`events[2].entity`). The body may be up to 32 MB.',
    tags: TAG_EVENTS,
    body: obj({ events: arr(newEvent, { min: 1, max: 1000 }) }, { required: ['events'] }),
    response: {
      202: obj({
        events: arr(obj({ id: str({ format: 'uuid' }), type: str(), idempotency_key: { type: ['string', 'null'] }, deliveries: int({ min: 0 }), duplicate: bool() }, { open: true })),
      }, { required: ['events'] }),
    },
  }),
  getEvent: route('native', {
    summary: 'Get an event with its deliveries and their attempts',
    tags: TAG_EVENTS,
    params: idParams(),
    response: { 200: { ...event, properties: { ...(event.properties as object), deliveries: arr(deliveryWithAttemptsSchema) } } },
  }),
  retryDelivery: route('native', {
    summary: 'Retry a delivery now',
    description: '409 while it is in flight, or while its subscription is paused or deleted.',
    tags: TAG_DELIVERIES,
    params: idParams(),
    response: { 202: deliverySchema },
  }),
};
