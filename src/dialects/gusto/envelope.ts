import type { HeraldEvent } from '../../domain/model.ts';
import { isNotice, NOTICES } from '../../domain/notices.ts';
import { OUT_OF_SERVICE } from '../../domain/outOfService.ts';
import { hexHmac } from '../../signing/signatures.ts';
import type { Envelope } from '../envelope.ts';

/** `EmployeeBenefit` → `employee_benefit`. */
export function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2').toLowerCase();
}

export const gustoEventType = (entity: string, event: string) => `${snake(entity)}.${snake(event)}`;

/** An event in Gusto's webhook shape; the events API lists the same objects. */
export function gustoEvent(e: HeraldEvent) {
  const refs = e.data.references;
  return {
    uuid: e.id,
    event_type: gustoEventType(e.entity, e.event),
    resource_type: e.parentType,
    resource_uuid: e.parentId,
    entity_type: e.entity,
    entity_uuid: e.entityId,
    timestamp: Math.floor(e.occurredAt / 1000),
    ...(refs && typeof refs === 'object' && !Array.isArray(refs) ? { references: refs } : {}),
  };
}

/**
 * Lower-case hex HMAC-SHA256 of the body keyed with the verification token, in
 * X-Gusto-Signature. The verification notice carries the token itself.
 */
export const gustoEnvelope: Envelope = {
  render(event, _subscription, { secrets }) {
    const token = secrets[0] ?? '';
    const body = isNotice(event.entity) && event.event === NOTICES.verification
      ? JSON.stringify({ verification_token: token })
      : JSON.stringify(gustoEvent(event));
    return { body, headers: { 'content-type': 'application/json', 'x-gusto-signature': hexHmac(token, body) } };
  },
  exhaustedStatus: OUT_OF_SERVICE.gusto.status,
};
