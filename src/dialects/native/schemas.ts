// Schemas of the native API's routes (routes.ts), in the style of src/http/schemas.ts.
import { ORDERINGS } from '../../domain/model.ts';
import {
  arr, attemptSchema, bool, deliverySchema, deliveryWithAttemptsSchema, idParams, isoTime, listOf, noContent, nullable, obj, pageOf, pageQuery,
  route, str, type JsonSchema,
} from '../../http/schemas.ts';

const ORDERING_WORDS = 'none: each delivery is sent as soon as it is due, many at once; entity: the deliveries of one entity '
  + '(entity type and entity_id) are sent one at a time, in publish order, each once the one before it has succeeded, failed '
  + 'for good or been cancelled, while different entities still go in parallel';

export const FILTER_RE = /^(\*|[A-Za-z][A-Za-z0-9_]{0,63})\.(\*|[A-Za-z][A-Za-z0-9_]{0,63})$/;

const endpoint = obj({
  id: str({ format: 'uuid' }),
  url: str({ format: 'uri' }),
  description: str(),
  filters: arr(str(), { description: 'Entity.Event names, either side may be *; empty: every event' }),
  paused: bool('deliveries are held while paused'),
  status: str({ description: 'active, or unreachable after a 410 Gone (unpause to turn it back on)' }),
  ordering: str({ enum: ORDERINGS, description: ORDERING_WORDS }),
  created_at: isoTime(),
  updated_at: isoTime(),
}, { open: true, required: ['id', 'url', 'description', 'filters', 'paused', 'status', 'ordering'] });

const url = str({ min: 1, max: 2000, format: 'uri', description: 'an absolute http(s) URL on a public address' });
const fields = {
  description: nullable(str({ max: 1000 })),
  filters: nullable(arr(str({ min: 1, max: 200, pattern: FILTER_RE, message: 'must be Entity.Event (either side may be *)' }), {
    description: 'Entity.Event names from the catalog, either side may be *; none: every event; at most HERALD_MAX_FILTERS_PER_SUBSCRIPTION (200 unless set)',
  })),
  paused: nullable(bool()),
  ordering: nullable(str({ enum: ORDERINGS, message: 'must be none or entity', description: `${ORDERING_WORDS} (none unless given); a change applies to events published after it` })),
};

const withSecret: JsonSchema = {
  ...endpoint,
  properties: { ...(endpoint.properties as object), secret: str({ description: 'the Standard Webhooks signing secret (whsec_...), shown only here' }) },
};

const TAGS = ['endpoints'];
const TAG_DELIVERIES = ['deliveries'];

export const nativeSchemas = {
  createEndpoint: route('native', {
    summary: 'Create an endpoint',
    description: 'Its signing secret is in the answer, and only there.',
    tags: TAGS,
    body: obj({ url, ...fields }, { required: ['url'] }),
    response: { 201: withSecret },
  }),
  listEndpoints: route('native', { summary: 'List your endpoints', tags: TAGS, response: { 200: listOf(endpoint) } }),
  getEndpoint: route('native', { summary: 'Get an endpoint', tags: TAGS, params: idParams(), response: { 200: endpoint } }),
  patchEndpoint: route('native', {
    summary: 'Change some of an endpoint\'s fields',
    description: 'Unpausing (`paused: false`) also turns back on an endpoint disabled by a 410 Gone.',
    tags: TAGS,
    params: idParams(),
    body: obj({ url: nullable(url), ...fields }),
    response: { 200: endpoint },
  }),
  putEndpoint: route('native', {
    summary: 'Replace an endpoint\'s fields',
    description: 'Fields left out take their defaults (no description, every event, not paused, no ordering).',
    tags: TAGS,
    params: idParams(),
    body: obj({ url, ...fields }, { required: ['url'] }),
    response: { 200: endpoint },
  }),
  deleteEndpoint: route('native', { summary: 'Delete an endpoint', tags: TAGS, params: idParams(), response: { 204: noContent } }),
  rotateSecret: route('native', {
    summary: 'Rotate an endpoint\'s signing secret',
    description: 'Deliveries are signed with the new secret and, until `previous_secrets_valid_until`, with the old ones too.',
    tags: TAGS,
    params: idParams(),
    response: { 200: obj({ secret: str(), previous_secrets_valid_until: isoTime() }, { required: ['secret', 'previous_secrets_valid_until'] }) },
  }),
  listDeliveries: route('native', {
    summary: 'List an endpoint\'s deliveries, newest first',
    tags: TAG_DELIVERIES,
    params: idParams(),
    querystring: pageQuery(),
    response: { 200: pageOf(deliverySchema) },
  }),
  getDelivery: route('native', {
    summary: 'Get one delivery of an endpoint with its attempts',
    tags: TAG_DELIVERIES,
    params: idParams('id', 'did'),
    response: { 200: deliveryWithAttemptsSchema },
  }),
  listAttempts: route('native', {
    summary: 'List an endpoint\'s attempts, newest first',
    tags: TAG_DELIVERIES,
    params: idParams(),
    querystring: pageQuery({ cursor: str({ pattern: /^\d+$/, message: 'must be a cursor from an earlier page', description: 'the next_cursor of the page before' }) }),
    response: { 200: pageOf(attemptSchema) },
  }),
};
