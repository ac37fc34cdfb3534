// The dashboard's shell: log in, pick the operator's view or a tenant's portal from what
// the token opens, lay out the tabs, and keep the live stream running.
import { Api, whoIs } from './api.js';
import { Deliveries } from './deliveries.js';
import { fill, h, tabs } from './dom.js';
import { ago, shortId } from './format.js';
import { LiveFeed } from './live.js';
import { operatorView } from './operator.js';
import { portalView } from './portal.js';
import { openStream } from './stream.js';
import { Subscriptions } from './subscriptions.js';

// sessionStorage: the token lives as long as this tab, is not shared with other tabs,
// and is never written to disk as a cookie or localStorage would be.
const KEY = 'herald.dashboard.token';
/** Set when the token came from a portal link. */
const VIA = 'herald.dashboard.portal-link';
const root = document.getElementById('app');
const toasts = h('div', { class: 'toasts', 'aria-live': 'polite' });
document.body.append(toasts);
let session = null;
/** Bumped whenever a session ends, so a mount still loading knows it is no longer wanted. */
let generation = 0;

/** A portal link carries its token in the fragment; it is moved to sessionStorage and taken off the address bar. */
function takePortalToken() {
  const m = /^#portal=([^&]+)/.exec(location.hash);
  if (!m) return false;
  let token = m[1];
  try { token = decodeURIComponent(token); } catch { /* used as it is */ }
  sessionStorage.setItem(KEY, token);
  sessionStorage.setItem(VIA, '1');
  history.replaceState(null, '', location.pathname + location.search);
  return true;
}

function notify(text, kind = 'ok', action) {
  const t = h('div', { class: ['toast', `toast-${kind}`], role: kind === 'error' ? 'alert' : 'status' },
    h('span', null, text),
    action ? h('button', { type: 'button', class: 'link', on: { click: () => { t.remove(); action.run(); } } }, action.label) : null,
    h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', on: { click: () => t.remove() } }, '✕'));
  toasts.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 15_000 : 8000);
}

function end() {
  generation++;
  session?.stream.close();
  session = null;
}

function logout(message) {
  end();
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(VIA);
  showLogin(message);
}

function showLogin(message) {
  document.title = 'Herald dashboard';
  const token = h('input', { id: 'login-token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
  const error = h('p', { class: 'error', role: 'alert', hidden: !message }, message ?? '');
  const form = h('form', {
    class: 'login', 'aria-label': 'Log in',
    on: {
      submit: (e) => {
        e.preventDefault();
        const v = token.value.trim();
        if (!v) return;
        sessionStorage.setItem(KEY, v);
        sessionStorage.removeItem(VIA);
        token.value = '';
        boot();
      },
    },
  },
  h('div', { class: 'brand brand-large' }, h('img', { alt: '', width: 32, height: 32, class: 'logo' }), h('span', null, 'Herald')),
  h('h1', null, 'Log in to the dashboard'),
  h('p', { class: 'muted' }, 'The admin token opens the operator view; a tenant\u2019s API token or portal link opens that tenant\u2019s portal.'),
  h('div', { class: 'field' }, h('label', { for: 'login-token' }, 'Token'), token),
  error,
  h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  form.querySelector('img.logo').setAttribute('src', 'icon.svg');
  fill(root, h('main', { class: 'login-page' }, form));
  token.focus();
}

async function boot() {
  end();
  const token = sessionStorage.getItem(KEY);
  if (!token) return showLogin();
  fill(root, h('p', { class: 'loading' }, 'Loading…'));
  const gen = generation;
  let info;
  try {
    info = await whoIs(token, sessionStorage.getItem(VIA) === '1');
  } catch (err) {
    return showLogin(err.message);
  }
  if (gen !== generation) return;
  if (!info) {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(VIA);
    return showLogin('Herald does not accept that token (or the portal link has ended).');
  }
  await mount(token, info);
}

async function mount(token, info) {
  const api = new Api(token, () => logout('Your session has ended: Herald no longer accepts this token. Log in again.'));
  const view = info.role === 'operator' ? operatorView(api, info) : portalView(api, info);
  const ctx = {
    operator: view.operator, api, base: view.base,
    tenants: new Map(), subscriptions: new Map(), eventTypes: [], notify,
    tenantName: (id) => ctx.tenants.get(id)?.name ?? shortId(id),
    subscriptionUrl: (id) => ctx.subscriptions.get(id)?.url ?? shortId(id),
    openDelivery: (id) => { t.show('deliveries'); deliveries.open(id); },
    showDeliveries: (sub) => { t.show('deliveries'); deliveries.forSubscription(sub); },
  };
  // The first page of deliveries is shown as soon as it comes; the subscriptions (whose
  // health takes longest to work out) and the catalog fill in the names when they arrive.
  const gen = generation;
  const first = Deliveries.firstPage(api, view.base);
  first.catch(() => {});
  const prepared = view.prepare(ctx);
  const me = { stream: { close() {} } };
  session = me;

  const deliveries = new Deliveries(ctx);
  const subscriptions = new Subscriptions(ctx);
  const live = new LiveFeed(ctx);
  let unseen = 0;
  const items = [
    { id: 'deliveries', label: 'Deliveries', panel: h('section', { class: 'panel panel-fill' }, deliveries.el) },
    { id: 'subscriptions', label: 'Subscriptions', panel: h('section', { class: 'panel' }, subscriptions.el) },
    ...view.tabs(ctx).map((x) => ({ ...x, panel: h('section', { class: 'panel' }, x.panel) })),
    { id: 'live', label: 'Live', panel: h('section', { class: 'panel' }, live.el) },
  ];
  const t = tabs(view.operator ? 'Operator views' : 'Portal views', items, (id) => {
    items.find((x) => x.id === id)?.onShow?.();
    if (id === 'subscriptions') subscriptions.load();
    if (id === 'live') { unseen = 0; t.count('live', 0); }
  });
  const pill = h('span', { class: 'live-pill', role: 'status', 'aria-live': 'polite', 'aria-label': 'Live updates' }, 'Connecting…');
  document.title = view.operator ? 'Herald · Operator' : `Herald · ${view.title}`;
  fill(root,
    h('header', { class: 'top' },
      h('div', { class: 'brand' }, h('img', { alt: '', width: 22, height: 22, class: 'logo' }), h('span', null, 'Herald')),
      h('span', { class: 'role' }, view.operator ? 'Operator' : h('span', null, h('span', { class: 'muted' }, 'Portal · '), view.title)),
      view.subtitle ? h('span', { class: 'muted small' }, view.subtitle) : null,
      h('div', { class: 'spacer' }),
      pill,
      h('button', { type: 'button', class: 'secondary', on: { click: () => logout() } }, 'Log out')),
    h('nav', { class: 'tabbar' }, t.el),
    h('main', { class: 'main' }, items.map((x) => x.panel)));
  for (const img of root.querySelectorAll('img.logo')) img.setAttribute('src', 'icon.svg');
  t.show('deliveries');
  await deliveries.load(first);
  await prepared;
  if (gen !== generation) return;
  deliveries.lookupsChanged();

  const labels = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', closed: 'Offline' };
  me.stream = openStream(view.stream, token, {
    onAttempt: (a) => {
      deliveries.onAttempt(a);
      subscriptions.onAttempt(a, t.current === 'subscriptions');
      live.add(a);
      if (t.current !== 'live') t.count('live', ++unseen);
    },
    onState: (s) => { pill.textContent = labels[s] ?? s; pill.dataset.state = s; },
    // What happened while the stream was down is caught up on by loading the list again.
    onOpen: (n) => { if (n > 1) deliveries.load(); },
    onUnauthorized: () => logout('Your session has ended: Herald no longer accepts this token. Log in again.'),
  });
}

// "12 s ago" would go stale: every shown time is said again now and then.
setInterval(() => {
  const now = Date.now();
  for (const t of document.querySelectorAll('time[datetime]')) t.textContent = ago(t.dateTime, now);
}, 15_000);

window.addEventListener('hashchange', () => { if (takePortalToken()) boot(); });
takePortalToken();
boot();
