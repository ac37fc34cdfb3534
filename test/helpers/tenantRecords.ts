// A tenant with a record of every kind Herald keeps, in every dialect, and the credentials
// each dialect wants: what the hostile-input and cross-tenant suites aim at.
import type { TestHerald } from './herald.ts';

export interface TenantRecords {
  id: string;
  apiToken: string;
  subscriptionKey: string;
  clientId: string;
  clientSecret: string;
  /** A Paycor-style access token for this tenant. */
  accessToken: string;
  endpointId: string;
  registrationId: string;
  gustoId: string;
  eventId: string;
  /** A delivery to the native endpoint, and one to the Paycor-style registration. */
  deliveryId: string;
  paycorDeliveryId: string;
  /** herald listen's subscription id of session `s1`, when one was made. */
  listenSubscriptionId: string | null;
  /** Auth headers per API. */
  auth: { admin: Record<string, string>; native: Record<string, string>; paycor: Record<string, string>; paycorToken: Record<string, string>; gusto: Record<string, string> };
}

export async function paycorAccessToken(h: TestHerald, key: string, clientId: string, clientSecret: string): Promise<string> {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret });
  const res = await fetch(h.url + '/Accounts/v2/Common/Token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'Ocp-Apim-Subscription-Key': key },
    body: form.toString(),
  });
  const body = await res.json() as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`paycor token: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/**
 * Makes a tenant with one native endpoint, one Paycor-style registration and one Gusto-style
 * subscription (all pointing at `hookUrl`), and publishes one Employee.Add event to it.
 */
export async function tenantWithRecords(h: TestHerald, name: string, hookUrl: string, adminToken: string): Promise<TenantRecords> {
  const t = await h.tenant(name);
  const c = t.credentials;
  const accessToken = await paycorAccessToken(h, c.subscription_key, c.client_id, c.client_secret);
  const auth = {
    admin: { authorization: `Bearer ${adminToken}` },
    native: { authorization: `Bearer ${c.api_token}` },
    paycor: { 'ocp-apim-subscription-key': c.subscription_key, authorization: `Bearer ${accessToken}` },
    paycorToken: { 'ocp-apim-subscription-key': c.subscription_key },
    gusto: { authorization: `Token ${c.api_token}` },
  };
  const must = async (method: string, path: string, headers: Record<string, string>, body: unknown, status: number) => {
    const r = await h.call(method, path, null, body, headers);
    if (r.status !== status) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const ep = await must('POST', '/api/v1/endpoints', auth.native, { url: `${hookUrl}/native`, filters: ['Employee.*'] }, 201);
  const reg = await must('POST', '/eventsubscriptions/user/registrations', auth.paycor, { WebHookUri: `${hookUrl}/paycor`, Filters: ['Add'], IsPaused: false, Headers: { 'X-Team': name } }, 201);
  const gu = await must('POST', '/v1/webhook_subscriptions', auth.gusto, { url: `${hookUrl}/gusto`, subscription_types: ['Employee'] }, 201);
  const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: `${name}-1`, data: { n: 1 } });
  const list = await must('GET', `/admin/v1/deliveries?event_id=${ev.id}`, auth.admin, undefined, 200);
  const bySub = new Map<string, string>((list.data as { id: string; subscription_id: string }[]).map((d) => [d.subscription_id, d.id]));
  const deliveryId = bySub.get(ep.id);
  const paycorDeliveryId = bySub.get(reg.Id);
  if (!deliveryId || !paycorDeliveryId) throw new Error(`deliveries of ${ev.id}: ${JSON.stringify(list.data)}`);
  return {
    id: t.id, apiToken: c.api_token, subscriptionKey: c.subscription_key, clientId: c.client_id, clientSecret: c.client_secret, accessToken,
    endpointId: ep.id, registrationId: reg.Id, gustoId: gu.uuid, eventId: ev.id, deliveryId, paycorDeliveryId, listenSubscriptionId: null, auth,
  };
}

/** Every table's row count, and the rows of the small tables a refused call could change. */
export async function storeSnapshot(h: TestHerald): Promise<Record<string, unknown>> {
  const db = h.herald.store.db;
  const tables = db.engine === 'sqlite'
    ? (await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")).map((r) => r.name)
    : (await db.all<{ name: string }>('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name')).map((r) => r.name);
  const out: Record<string, unknown> = {};
  // One round trip for every count: the suites take a snapshot after each request.
  const counts = (await db.all<Record<string, number | string>>(`SELECT ${tables.map((t, i) => `(SELECT count(*) FROM ${t}) AS c${i}`).join(', ')}`))[0]!;
  tables.forEach((t, i) => { out[`count:${t}`] = Number(counts[`c${i}`]); });
  out.tenants = await db.all('SELECT * FROM tenants ORDER BY id');
  out.subscriptions = await db.all('SELECT * FROM subscriptions ORDER BY id');
  out.event_types = await db.all('SELECT * FROM event_types ORDER BY entity, event');
  out.deliveries = await db.all('SELECT * FROM deliveries ORDER BY id');
  return JSON.parse(JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
}
