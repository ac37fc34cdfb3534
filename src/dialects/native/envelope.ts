import type { HeraldEvent } from '../../domain/model.ts';
import { typeName } from '../../domain/eventTypes.ts';
import { standardSignature } from '../../signing/signatures.ts';
import type { Envelope } from '../envelope.ts';

export function nativeBody(e: HeraldEvent): string {
  // Herald's own fields come first and cannot be overridden by the published data.
  const data: Record<string, unknown> = { entity_id: e.entityId, entity_uri: e.entityUri, parent_type: e.parentType, parent_id: e.parentId };
  for (const [k, v] of Object.entries(e.data)) if (!(k in data)) data[k] = v;
  return JSON.stringify({ id: e.id, type: typeName(e.entity, e.event), timestamp: new Date(e.occurredAt).toISOString(), data });
}

/** Standard Webhooks: one `v1,` signature per valid secret, space-separated. */
export const nativeEnvelope: Envelope = {
  render(event, _subscription, { secrets, nowMs }) {
    const body = nativeBody(event);
    const ts = Math.floor(nowMs / 1000);
    return {
      body,
      headers: {
        'content-type': 'application/json',
        'webhook-id': event.id,
        'webhook-timestamp': String(ts),
        'webhook-signature': secrets.map((s) => standardSignature(s, event.id, ts, body)).join(' '),
      },
    };
  },
};
