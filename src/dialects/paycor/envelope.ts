import { createHmac } from 'node:crypto';
import type { HeraldEvent, Subscription } from '../../domain/model.ts';
import { typeName } from '../../domain/eventTypes.ts';
import type { Envelope } from '../envelope.ts';

/**
 * JSON with every character past 0x7E written as a \u escape. The seed's sample validator
 * turns the body into bytes with an ASCII encoder, which maps any other character to '?';
 * an all-ASCII body makes its bytes and the bytes Herald signed the same.
 */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** Upper-case hex HMAC-SHA256 of the body, keyed with the (ASCII) secret. */
export function paycorSignature(secret: string, body: string): string {
  return createHmac('sha256', Buffer.from(secret, 'latin1')).update(body, 'latin1').digest('hex').toUpperCase();
}

/** Paycor's ids are integers; a numeric id is sent as a number, anything else as it is. */
export function paycorId(v: string | null): number | string | null {
  if (v === null) return null;
  return /^\d{1,15}$/.test(v) ? Number(v) : v;
}

export interface PaycorNotification {
  EventId: string;
  EventType: string;
  TenantId: number;
  LegalEntityId: number | string | null;
  ItemId: string;
  Resource: { Id: string; Url: string | null };
  ExtendedProperties: Record<string, unknown>;
  ChangedFields: unknown[] | null;
}

/** The thin notification: what changed and where to fetch it. */
export function paycorNotification(e: HeraldEvent, s: Pick<Subscription, 'properties'>, tenantNumber: number): PaycorNotification {
  const { changed_fields: changed, ...rest } = e.data;
  return {
    EventId: e.id,
    EventType: typeName(e.entity, e.event),
    TenantId: tenantNumber,
    LegalEntityId: paycorId(e.parentId),
    ItemId: e.entityId,
    Resource: { Id: e.entityId, Url: e.entityUri },
    ExtendedProperties: { ...rest, ...s.properties },
    ChangedFields: Array.isArray(changed) ? changed : null,
  };
}

export function paycorEnvelope(signatureHeader: string): Envelope {
  const header = signatureHeader.toLowerCase();
  return {
    render(event, subscription, { secrets, tenantNumber }) {
      const body = asciiJson(paycorNotification(event, subscription, tenantNumber));
      // One secret at a time: the Paycor-style API has no rotation, so the first is the only one.
      return { body, headers: { 'content-type': 'application/json', [header]: paycorSignature(secrets[0] ?? '', body) } };
    },
  };
}
