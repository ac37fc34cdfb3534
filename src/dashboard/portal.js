// One tenant's portal: Herald answers it with that tenant's records only.
import { ago } from './format.js';

export function portalView(api, info) {
  const me = info.me;
  const via = me.via === 'portal_link' && me.expires_at ? `portal link, ends ${ago(me.expires_at)}` : null;
  return {
    operator: false,
    base: '/portal/v1',
    stream: '/portal/v1/stream',
    title: me.tenant?.name ?? 'Portal',
    subtitle: via,

    async prepare(ctx) {
      ctx.tenants.set(me.tenant.id, me.tenant);
      const subs = await api.get('/portal/v1/subscriptions').catch(() => null);
      for (const s of subs?.data ?? []) ctx.subscriptions.set(s.id, s);
    },

    tabs() {
      return [];
    },
  };
}
