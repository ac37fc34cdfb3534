// Schemas of the Paycor-style routes (routes.ts), in the style of src/http/schemas.ts.
// Objects are open: ASP.NET ignores JSON fields it does not know, and so does this dialect.
// Field names are checked in the documented case; the routes bring a body's names to that
// case before the schema sees it (see `bindFieldNames` in routes.ts).
import { arr, bool, idParams, int, noContent, nullable, obj, oauthErrorBody, route, str, stringMap, type JsonSchema } from '../../http/schemas.ts';

/** Printable ASCII: the seed's validator encodes the secret as ASCII, so nothing else survives it. */
export const ASCII_SECRET = /^[\x20-\x7e]+$/;
export const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/;

const asciiSecret = (min: number, max: number, description: string) => str({ min, max, pattern: ASCII_SECRET, message: 'must be printable ASCII characters', description });

const registration = obj({
  Id: str({ format: 'uuid' }),
  WebHookUri: str({ format: 'uri' }),
  Description: str(),
  IsPaused: bool(),
  Filters: arr(str(), { description: 'event names (`Add`: on every entity) or Entity.Event names; empty: every event' }),
  Headers: { type: 'object', additionalProperties: { type: 'string' }, description: 'custom headers sent with each notification' },
  Properties: { type: 'object', additionalProperties: { type: 'string' }, description: 'merged into each notification\'s ExtendedProperties' },
}, { open: true, required: ['Id', 'WebHookUri', 'Description', 'IsPaused', 'Filters', 'Headers', 'Properties'] });

const registrationBody = (put: boolean) => obj({
  ...(put ? { Id: { type: ['string', 'integer', 'null'], description: 'if given, the id in the path' } } : {}),
  WebHookUri: str({ min: 1, max: 2000, format: 'uri', description: 'an absolute http(s) URL on a public address' }),
  Secret: nullable(asciiSecret(32, 64, put ? 'a new signing secret; left out: the current one is kept' : 'the signing secret; left out: Herald makes a GUID and answers it once')),
  Description: nullable(str({ max: 1000 })),
  IsPaused: nullable(bool(put ? 'left out: unchanged' : 'left out: true, as the seed says')),
  Filters: nullable(arr(str({ min: 1, max: 200 }), { description: 'event names (`Add`) or Entity.Event names from the catalog; `*` or none: every event; at most HERALD_MAX_FILTERS_PER_SUBSCRIPTION (200 unless set)' })),
  Headers: nullable(stringMap({ maxEntries: 1000, keyPattern: HEADER_NAME, description: 'custom headers (not Host, Content-Type, User-Agent, webhook-* and the like); at most HERALD_MAX_HEADERS_PER_SUBSCRIPTION (20 unless set)' })),
  Properties: nullable(stringMap({ maxEntries: 50 })),
}, { open: true, required: ['WebHookUri'], description: 'Field names bind in any letter case; unknown fields are ignored' });

const notification = obj({
  EventId: str({ format: 'uuid' }),
  EventType: str(),
  TenantId: int(),
  LegalEntityId: { type: ['integer', 'string', 'null'] },
  ItemId: str(),
  Resource: obj({ Id: str(), Url: { type: ['string', 'null'] } }, { open: true }),
  ExtendedProperties: { type: 'object', additionalProperties: true },
  ChangedFields: { type: ['array', 'null'], items: { type: 'string' } },
}, { open: true, required: ['EventId', 'EventType', 'TenantId', 'ItemId'] });

const TAG_AUTH = ['authentication'];
const TAG_REG = ['registrations'];
const TAG_EVENTS = ['events'];

const tokenBody: JsonSchema = {
  type: ['object', 'null'],
  properties: {
    grant_type: str({ description: 'client_credentials (any other is answered unsupported_grant_type)' }),
    client_id: str({ description: 'the tenant\'s client_id; or give both in an Authorization: Basic header' }),
    client_secret: str({ description: 'the tenant\'s client_secret' }),
    scope: str({ description: 'echoed back' }),
  },
};

export const paycorSchemas = {
  token: route('paycor', {
    summary: 'Get an access token (OAuth 2 client credentials)',
    description: 'Needs the tenant\'s `Ocp-Apim-Subscription-Key` header and its client credentials, in the body or an `Authorization: Basic` header. '
      + 'Errors are OAuth errors (`error`, `error_description`) with Paycor\'s error model beside them.',
    tags: TAG_AUTH,
    security: [{ subscriptionKey: [] }],
    consumes: ['application/x-www-form-urlencoded', 'application/json'],
    body: tokenBody,
    response: {
      200: obj({ access_token: str(), token_type: str({ enum: ['Bearer'] }), expires_in: int({ description: 'seconds' }), scope: str() }, { required: ['access_token', 'token_type', 'expires_in'] }),
      400: { ...oauthErrorBody, description: 'invalid_request or unsupported_grant_type' },
      401: { ...oauthErrorBody, description: 'invalid_client: the key, the client id or the secret is not valid' },
    },
  }),
  catalog: route('paycor', {
    summary: 'List the events one can subscribe to',
    tags: TAG_EVENTS,
    response: { 200: arr(obj({ Entity: str(), Event: str(), Description: str() }, { open: true, required: ['Entity', 'Event', 'Description'] })) },
  }),
  createRegistration: route('paycor', {
    summary: 'Register a webhook',
    description: 'Paused unless `IsPaused` is false. The `Secret` is in this answer and in no other.',
    tags: TAG_REG,
    body: registrationBody(false),
    response: { 201: { ...registration, properties: { ...(registration.properties as object), Secret: str() } } },
  }),
  listRegistrations: route('paycor', { summary: 'List your registrations', tags: TAG_REG, response: { 200: arr(registration) } }),
  getRegistration: route('paycor', { summary: 'Get a registration', tags: TAG_REG, params: idParams(), response: { 200: registration } }),
  putRegistration: route('paycor', {
    summary: 'Replace a registration',
    description: 'A missing `IsPaused` keeps the current state and a missing `Secret` the current secret.',
    tags: TAG_REG,
    params: idParams(),
    body: registrationBody(true),
    response: { 200: registration },
  }),
  deleteRegistration: route('paycor', {
    summary: 'Delete a registration',
    description: 'What was queued for it is cancelled.',
    tags: TAG_REG,
    params: idParams(),
    response: { 204: noContent },
  }),
  mockEvent: route('paycor', {
    summary: 'Send a signed test notification',
    description: 'Sent once to `NotificationURL`, signed with `NotificationSecret`, and answered here as sent.',
    tags: TAG_EVENTS,
    body: obj({
      ApplicationId: { description: 'accepted and ignored' },
      TenantId: { description: 'accepted and ignored: the notification carries the caller\'s tenant number' },
      EventType: str({ min: 1, max: 130, description: 'an Entity.Event name from the catalog' }),
      NotificationURL: str({ min: 1, max: 2000, format: 'uri' }),
      NotificationSecret: asciiSecret(1, 256, 'the secret to sign it with'),
      ItemId: { type: ['string', 'number', 'null'], minLength: 1, maxLength: 200, description: 'left out: a GUID' },
      LegalEntityId: { type: ['string', 'number', 'null'], minLength: 1, maxLength: 200 },
    }, { open: true, required: ['EventType', 'NotificationURL', 'NotificationSecret'], description: 'Field names bind in any letter case; unknown fields are ignored' }),
    response: { 201: notification },
  }),
};
