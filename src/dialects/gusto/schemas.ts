// Schemas of the Gusto-style routes (routes.ts), in the style of src/http/schemas.ts.
// Objects are open, as Gusto's API ignores attributes it does not take. Every field error
// is a 422 in this dialect (the routes' error handler turns the schema's 400 into one).
import { arr, idParams, int, noContent, obj, route, str } from '../../http/schemas.ts';

export const EVENT_TYPE_PATTERN = /^[a-z0-9_*]+(\.[a-z0-9_*]+)?$/;

const subscription = obj({
  uuid: str({ format: 'uuid' }),
  url: str({ format: 'uri' }),
  status: str({ description: 'pending until verified, then verified; unreachable after a 410 Gone or exhausted retries' }),
  subscription_types: arr(str(), { description: 'entities, e.g. Employee, Company, Payroll' }),
}, { open: true, required: ['uuid', 'url', 'status', 'subscription_types'] });

const types = arr(str({ description: 'an entity of the event catalog' }), { min: 1, description: 'the entities whose events it receives, e.g. Employee' });

const event = obj({
  uuid: str({ format: 'uuid' }),
  event_type: str({ examples: ['employee.created'] }),
  resource_type: { type: ['string', 'null'] },
  resource_uuid: { type: ['string', 'null'] },
  entity_type: str(),
  entity_uuid: str(),
  timestamp: int({ description: 'unix seconds' }),
  references: { type: 'object', additionalProperties: true },
}, { open: true, required: ['uuid', 'event_type', 'entity_type', 'entity_uuid', 'timestamp'] });

const TAGS = ['webhook subscriptions'];
const TAG_EVENTS = ['events'];

export const gustoSchemas = {
  create: route('gusto', {
    summary: 'Create a webhook subscription',
    description: 'It starts `pending`: Herald posts `{ verification_token }` to the url (signed with that token); send it back to the verify call to start deliveries.',
    tags: TAGS,
    body: obj({ url: str({ min: 1, max: 2000, format: 'uri', description: 'an absolute http(s) URL on a public address' }), subscription_types: types }, { open: true, required: ['url', 'subscription_types'] }),
    response: { 201: subscription },
  }),
  list: route('gusto', { summary: 'List your webhook subscriptions', tags: TAGS, response: { 200: arr(subscription) } }),
  get: route('gusto', { summary: 'Get a webhook subscription', tags: TAGS, params: idParams('uuid'), response: { 200: subscription } }),
  update: route('gusto', {
    summary: 'Change a webhook subscription\'s types',
    description: 'The url cannot change: create a new subscription for a new url.',
    tags: TAGS,
    params: idParams('uuid'),
    body: obj({ url: str({ description: 'if given, the current url' }), subscription_types: types }, { open: true, required: ['subscription_types'] }),
    response: { 200: subscription },
  }),
  delete: route('gusto', { summary: 'Delete a webhook subscription', tags: TAGS, params: idParams('uuid'), response: { 204: noContent } }),
  verify: route('gusto', {
    summary: 'Verify a webhook subscription',
    description: 'With the token Herald posted to its url; deliveries start once verified.',
    tags: TAGS,
    params: idParams('uuid'),
    body: obj({ verification_token: str({ min: 1, max: 100 }) }, { open: true, required: ['verification_token'] }),
    response: { 200: subscription },
  }),
  requestToken: route('gusto', {
    summary: 'Send the verification token again',
    tags: TAGS,
    params: idParams('uuid'),
    response: { 200: obj({ message: str() }, { required: ['message'] }) },
  }),
  health: route('gusto', {
    summary: 'Health of your webhook deliveries',
    description: 'unhealthy when a subscription is unreachable or the last attempt failed; unknown before any attempt.',
    tags: TAGS,
    response: { 200: obj({ status: str({ enum: ['healthy', 'unhealthy', 'unknown'] }), last_checked_at: { type: ['string', 'null'], format: 'date-time' } }, { required: ['status', 'last_checked_at'] }) },
  }),
  events: route('gusto', {
    summary: 'List your events of the last 30 days',
    tags: TAG_EVENTS,
    querystring: obj({
      limit: int({ min: 1, max: 100, default: 25 }),
      sort_order: str({ enum: ['asc', 'desc'], description: 'by time; default asc' }),
      starting_after_uuid: str({ format: 'uuid', description: 'the last event uuid of the page before' }),
      event_type: str({ pattern: EVENT_TYPE_PATTERN, message: 'must be an event type such as employee.created, with * as a wildcard', description: 'e.g. employee.created, employee.*, *.created' }),
      resource_uuid: str({ description: 'only events of this resource (e.g. a company)' }),
    }, { open: true }),
    response: { 200: arr(event) },
  }),
};

