// What only the operator sees: every tenant, the event catalog, and portal links.
import { fill, h } from './dom.js';
import { idCode, time, when } from './format.js';

export function operatorView(api, info) {
  return {
    operator: true,
    base: '/admin/v1',
    stream: '/admin/v1/stream',
    title: 'Operator',
    subtitle: null,

    /** Tenants are known at once (the login asked for them); the rest comes after the first page. */
    async prepare(ctx) {
      for (const t of info.tenants) ctx.tenants.set(t.id, t);
      const [types, subs] = await Promise.all([
        api.get('/admin/v1/event-types').catch(() => null),
        api.all('/admin/v1/subscriptions').catch(() => []),
      ]);
      ctx.eventTypes.push(...(types?.data ?? []).map((t) => t.type));
      ctx.catalog = types?.data ?? [];
      for (const s of subs) ctx.subscriptions.set(s.id, s);
    },

    tabs(ctx) {
      return [
        { id: 'tenants', label: 'Tenants', panel: tenantsPanel(ctx) },
        { id: 'event-types', label: 'Event types', ...eventTypesPanel(ctx) },
      ];
    },
  };
}

function tenantsPanel(ctx) {
  const links = h('div', { class: 'notices' });
  const tbody = h('tbody');
  const render = () => fill(tbody, [...ctx.tenants.values()].map((t) => h('tr', null,
    h('td', null, t.name),
    h('td', { class: 'num' }, String(t.number ?? '')),
    h('td', null, idCode(t.id)),
    h('td', null, time(t.created_at)),
    h('td', null,
      h('button', { type: 'button', class: 'secondary', 'aria-label': `Portal link for ${t.name}`, on: { click: (e) => mint(t, e.currentTarget) } }, 'Portal link')))));
  const mint = async (t, button) => {
    button.disabled = true;
    try {
      const r = await ctx.api.post('/admin/v1/portal-links', { tenant_id: t.id });
      const field = h('input', { type: 'text', readOnly: true, value: r.url, class: 'secret', 'aria-label': `Portal link for ${t.name}`, spellcheck: 'false' });
      const panel = h('section', { class: 'secret-panel', 'aria-label': `Portal link for ${t.name}` },
        h('h3', null, `Portal link for ${t.name}`),
        h('p', { class: 'warning' }, `Anyone holding this link acts as ${t.name} in its portal until ${when(r.expires_at)}. Send it privately.`),
        h('div', { class: 'secret-row' }, field,
          h('button', { type: 'button', class: 'secondary', on: { click: async (e) => { field.select(); try { await navigator.clipboard.writeText(r.url); e.currentTarget.textContent = 'Copied'; } catch { /* selected for Ctrl+C */ } } } }, 'Copy')),
        h('button', { type: 'button', class: 'link', on: { click: () => panel.remove() } }, 'Dismiss'));
      fill(links, panel);
      field.select();
    } catch (err) {
      if (err.status !== 401) ctx.notify(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  };
  const refresh = async () => {
    try {
      const r = await ctx.api.get('/admin/v1/tenants');
      ctx.tenants.clear();
      for (const t of r?.data ?? []) ctx.tenants.set(t.id, t);
      render();
    } catch (err) {
      if (err.status !== 401) ctx.notify(err.message, 'error');
    }
  };
  render();
  const el = h('div', null,
    h('div', { class: 'toolbar' }, h('h2', null, 'Tenants'), h('div', { class: 'spacer' }),
      h('button', { type: 'button', class: 'secondary', on: { click: refresh } }, 'Refresh')),
    links,
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid', 'aria-label': 'Tenants' },
      h('thead', null, h('tr', null, ['Name', 'Number', 'Id', 'Created', 'Portal'].map((x) => h('th', { scope: 'col' }, x)))), tbody)));
  return el;
}

/** The catalog, filled in when the tab is shown (it arrives after the deliveries). */
function eventTypesPanel(ctx) {
  const tbody = h('tbody');
  const panel = h('div', null,
    h('div', { class: 'toolbar' }, h('h2', null, 'Event types')),
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid', 'aria-label': 'Event types' },
      h('thead', null, h('tr', null, ['Type', 'Description'].map((x) => h('th', { scope: 'col' }, x)))), tbody)));
  const onShow = () => fill(tbody, (ctx.catalog ?? []).map((t) => h('tr', null, h('td', null, h('code', null, t.type)), h('td', null, t.description || '—'))));
  return { panel, onShow };
}
