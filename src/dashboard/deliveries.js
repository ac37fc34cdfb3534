// The deliveries list with its filters and pages, and one delivery with its attempts.
// The operator's view and a tenant's portal share it; `base` says which API it calls.
import { fill, h, input, select, throttle } from './dom.js';
import { answer, badge, duration, idCode, time, when, whenShort } from './format.js';

const STATUSES = ['pending', 'held', 'succeeded', 'failed', 'cancelled'];
const RANGES = [['', 'Any time'], ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['custom', 'Between…']];
const RANGE_MS = { '15m': 15 * 60_000, '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000 };
const PAGE = 50;

let firstRender = true;

export class Deliveries {
  /**
   * ctx: { operator, api, base, tenants: Map, subscriptions: Map, eventTypes: string[],
   * notify(text, kind), tenantName(id), subscriptionUrl(id) }
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.cursors = [undefined];
    this.rows = new Map();
    this.items = [];
    this.openId = null;
    this.reloadSoon = throttle(() => this.load(), 1000);
    this.detailSoon = throttle(() => this.refreshDetail(), 250);
    this.el = this.build();
  }

  build() {
    const c = this.ctx;
    this.f = {};
    const fields = [];
    if (c.operator) {
      const t = select('Tenant', 'tenant_id', [['', 'All tenants'], ...[...c.tenants.values()].map((t) => [t.id, t.name])]);
      t.input.addEventListener('change', () => { this.fillSubscriptions(); this.apply(); });
      this.f.tenant = t.input;
      fields.push(t.el);
    }
    const s = select('Subscription', 'subscription_id', [['', 'All subscriptions']]);
    s.input.addEventListener('change', () => this.apply());
    this.f.subscription = s.input;
    const st = select('Status', 'status', [['', 'Any status'], ...STATUSES.map((x) => [x, x])]);
    st.input.addEventListener('change', () => this.apply());
    this.f.status = st.input;
    this.typeList = h('datalist', { id: `types-${Math.random().toString(36).slice(2, 8)}` });
    const et = input('Event type', 'event_type', { type: 'search', list: this.typeList.id, placeholder: 'Entity.Event', autocomplete: 'off', spellcheck: 'false' });
    et.input.addEventListener('change', () => this.apply());
    this.f.type = et.input;
    const r = select('Time range', 'range', RANGES);
    this.f.range = r.input;
    const since = input('From', 'since', { type: 'datetime-local', step: '1' });
    const until = input('To', 'until', { type: 'datetime-local', step: '1' });
    this.f.since = since.input;
    this.f.until = until.input;
    this.custom = h('div', { class: 'field-group', hidden: true }, since.el, until.el);
    r.input.addEventListener('change', () => { this.custom.hidden = r.input.value !== 'custom'; if (r.input.value !== 'custom') this.apply(); });
    for (const i of [since.input, until.input]) i.addEventListener('change', () => this.apply());
    fields.push(s.el, st.el, et.el, this.typeList, r.el, this.custom);

    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter deliveries', on: { submit: (e) => { e.preventDefault(); this.apply(); } } },
      fields,
      h('div', { class: 'field-actions' },
        h('button', { type: 'submit', class: 'secondary' }, 'Filter'),
        h('button', { type: 'button', class: 'link', on: { click: () => this.clear() } }, 'Clear')));

    this.error = h('p', { class: 'error', role: 'alert', hidden: true });
    this.tbody = h('tbody');
    const head = ['Created', 'Event type', c.operator ? 'Tenant' : null, 'Subscription', 'Status', 'Attempts', 'Delivery'].filter(Boolean);
    this.table = h('table', { class: 'grid deliveries', 'aria-label': 'Deliveries' },
      h('thead', null, h('tr', null, head.map((x) => h('th', { scope: 'col' }, x)))), this.tbody);
    this.empty = h('p', { class: 'empty', hidden: true }, 'No deliveries match.');
    this.newer = h('button', { type: 'button', class: 'secondary', disabled: true, on: { click: () => this.page(-1) } }, '← Newer');
    this.older = h('button', { type: 'button', class: 'secondary', disabled: true, on: { click: () => this.page(1) } }, 'Older →');
    this.pageNo = h('span', { class: 'muted' });
    const toolbar = h('div', { class: 'toolbar' },
      h('h2', null, 'Deliveries'),
      h('div', { class: 'spacer' }),
      c.operator ? null : h('button', { type: 'button', class: 'secondary', on: { click: () => this.retryFailed() } }, 'Retry all failed'),
      h('button', { type: 'button', class: 'secondary', on: { click: () => this.load() } }, 'Refresh'));
    this.detail = h('section', { class: 'detail', 'aria-label': 'Delivery details', hidden: true });
    const list = h('div', { class: 'list' }, this.error,
      h('div', { class: 'table-wrap' }, this.table), this.empty,
      h('nav', { class: 'pager', 'aria-label': 'Delivery pages' }, this.newer, this.pageNo, this.older));
    this.fillSubscriptions();
    this.fillTypes();
    return h('div', { class: 'deliveries-view' }, toolbar, form, h('div', { class: 'split' }, list, this.detail));
  }

  /** The subscription choices, narrowed to the chosen tenant. */
  fillSubscriptions() {
    const tenant = this.f.tenant?.value;
    const keep = this.f.subscription.value;
    const subs = [...this.ctx.subscriptions.values()].filter((s) => !tenant || s.tenant_id === tenant);
    fill(this.f.subscription, h('option', { value: '' }, 'All subscriptions'),
      subs.map((s) => h('option', { value: s.id, selected: s.id === keep }, this.ctx.operator ? `${s.url} — ${s.tenant_name ?? this.ctx.tenantName(s.tenant_id)}` : s.url)));
  }

  fillTypes() {
    fill(this.typeList, this.ctx.eventTypes.map((t) => h('option', { value: t })));
  }

  query() {
    const f = this.f;
    const q = { subscription_id: f.subscription.value, status: f.status.value, event_type: f.type.value.trim() };
    if (f.tenant) q.tenant_id = f.tenant.value;
    const range = f.range.value;
    if (RANGE_MS[range]) q.since = new Date(Date.now() - RANGE_MS[range]).toISOString();
    if (range === 'custom') {
      const iso = (v) => (v ? new Date(v).toISOString() : '');
      q.since = iso(f.since.value);
      q.until = iso(f.until.value);
    }
    return q;
  }

  apply() {
    // Enter in a text field is both its change and the form's submit: one request, not two.
    const key = JSON.stringify(Object.values(this.f).map((i) => i.value));
    if (key === this.lastKey && Date.now() - this.lastAt < 500) return undefined;
    this.lastKey = key;
    this.lastAt = Date.now();
    this.cursors = [undefined];
    return this.load();
  }

  reset() {
    for (const k of ['tenant', 'subscription', 'status', 'range']) if (this.f[k]) this.f[k].value = '';
    this.f.type.value = this.f.since.value = this.f.until.value = '';
    this.custom.hidden = true;
  }

  clear() {
    this.reset();
    this.fillSubscriptions();
    return this.apply();
  }

  /** Shows the subscription's deliveries (from the subscriptions table). */
  forSubscription(sub) {
    this.reset();
    if (this.f.tenant) this.f.tenant.value = sub.tenant_id;
    this.fillSubscriptions();
    this.f.subscription.value = sub.id;
    return this.apply();
  }

  page(step) {
    if (step > 0 && this.next) this.cursors.push(this.next);
    if (step < 0 && this.cursors.length > 1) this.cursors.pop();
    return this.load();
  }

  /** The first page's request, made before the rest of the page is ready (it is what takes longest). */
  static firstPage(api, base) {
    return api.get(`${base}/deliveries`, { limit: PAGE });
  }

  load(preloaded) {
    return this.take(preloaded ?? this.ctx.api.get(`${this.ctx.base}/deliveries`, { ...this.query(), limit: PAGE, cursor: this.cursors.at(-1) }));
  }

  async take(request) {
    // Answers can come back out of order: only the latest request's is shown.
    const seq = this.seq = (this.seq ?? 0) + 1;
    this.table.setAttribute('aria-busy', 'true');
    try {
      const res = await request;
      if (seq !== this.seq) return;
      this.error.hidden = true;
      this.items = res?.data ?? [];
      this.next = res?.next_cursor ?? null;
      this.render();
    } catch (err) {
      if (err.status === 401 || seq !== this.seq) return;
      this.error.textContent = err.message;
      this.error.hidden = false;
    } finally {
      if (seq === this.seq) this.table.removeAttribute('aria-busy');
    }
  }

  render() {
    this.rows.clear();
    fill(this.tbody, this.items.map((d) => this.row(d)));
    this.empty.hidden = this.items.length > 0;
    this.newer.disabled = this.cursors.length <= 1;
    this.older.disabled = !this.next;
    this.pageNo.textContent = `Page ${this.cursors.length}`;
    // A type seen here is offered in the filter too (the portal has no catalog of its own).
    let grew = false;
    for (const d of this.items) if (d.event_type && !this.ctx.eventTypes.includes(d.event_type)) { this.ctx.eventTypes.push(d.event_type); grew = true; }
    if (grew) this.fillTypes();
    this.table.dataset.loaded = 'true';
    if (firstRender) {
      firstRender = false;
      performance.mark('herald:deliveries-rendered');
    }
  }

  /** The subscriptions and event types arrived: the choices and the names are filled in. */
  lookupsChanged() {
    this.fillSubscriptions();
    this.fillTypes();
    if (this.table.dataset.loaded) this.render();
    if (this.openId) this.refreshDetail();
    performance.mark('herald:deliveries-complete');
  }

  row(d) {
    const c = this.ctx;
    const status = h('td', null, badge(d.status));
    // The count and the last answer share a cell: the table must fit beside an open delivery.
    const count = h('span', null, String(d.attempts ?? 0));
    const last = h('span', { class: 'last' }, answer(d.last_status_code, d.last_status_code == null && d.last_error ? 'error' : null));
    const attempts = h('td', { class: 'attempts-cell' }, count, last);
    const tr = h('tr', { 'data-id': d.id, class: d.id === this.openId ? 'selected' : null, on: { click: (e) => { if (!e.target.closest('button')) this.open(d.id); } } },
      h('td', null, time(d.created_at)),
      h('td', null, d.event_type ? h('code', null, d.event_type) : h('span', { class: 'muted' }, '—')),
      c.operator ? h('td', null, c.tenantName(d.tenant_id)) : null,
      h('td', { class: 'url', title: c.subscriptionUrl(d.subscription_id) }, bare(c.subscriptionUrl(d.subscription_id))),
      status, attempts,
      h('td', null, h('button', { type: 'button', class: 'link id', 'aria-label': `Open delivery ${d.id}`, title: d.id, on: { click: () => this.open(d.id) } }, idCode(d.id))));
    if (d.id === this.openId) tr.setAttribute('aria-current', 'true');
    this.rows.set(d.id, { tr, status, count, last });
    return tr;
  }

  /** A new attempt from the live stream. */
  onAttempt(a) {
    if (a.delivery_id === this.openId) this.detailSoon();
    const r = this.rows.get(a.delivery_id);
    if (r) {
      if (a.delivery_status) fill(r.status, badge(a.delivery_status));
      if (a.attempt) r.count.textContent = String(a.attempt);
      fill(r.last, answer(a.status_code, a.error_kind));
      r.tr.classList.remove('flash');
      void r.tr.offsetWidth; // restart the highlight's animation
      r.tr.classList.add('flash');
      return;
    }
    // A delivery newer than the newest shown, that the filters let through: load the page again.
    if (this.cursors.length > 1 || !this.matches(a)) return;
    const top = this.items[0]?.id;
    if (!top || String(a.delivery_id) > top) this.reloadSoon();
  }

  matches(a) {
    const q = this.query();
    if (q.tenant_id && q.tenant_id !== a.tenant_id) return false;
    if (q.subscription_id && q.subscription_id !== a.subscription_id) return false;
    if (q.status && q.status !== a.delivery_status) return false;
    if (q.event_type && q.event_type !== a.event_type) return false;
    if (q.until && Date.parse(q.until) < Date.now()) return false;
    return true;
  }

  async open(id) {
    this.openId = id;
    for (const [rid, r] of this.rows) {
      r.tr.classList.toggle('selected', rid === id);
      if (rid === id) r.tr.setAttribute('aria-current', 'true');
      else r.tr.removeAttribute('aria-current');
    }
    this.detail.hidden = false;
    fill(this.detail, h('p', { class: 'muted' }, 'Loading…'));
    await this.refreshDetail();
  }

  close() {
    this.openId = null;
    this.detail.hidden = true;
    for (const r of this.rows.values()) { r.tr.classList.remove('selected'); r.tr.removeAttribute('aria-current'); }
  }

  async refreshDetail() {
    const id = this.openId;
    if (!id) return;
    try {
      const d = await this.ctx.api.get(`${this.ctx.base}/deliveries/${encodeURIComponent(id)}`);
      if (this.openId !== id) return;
      this.renderDetail(d);
    } catch (err) {
      if (err.status === 401 || this.openId !== id) return;
      fill(this.detail, h('p', { class: 'error', role: 'alert' }, err.message));
    }
  }

  renderDetail(d) {
    const c = this.ctx;
    const attempts = [...(d.attempt_log ?? [])].sort((x, y) => (y.attempt ?? 0) - (x.attempt ?? 0));
    const field = (name, ...value) => [h('dt', null, name), h('dd', null, ...value)];
    fill(this.detail,
      h('div', { class: 'detail-head' },
        h('h2', null, 'Delivery'),
        h('div', { class: 'spacer' }),
        h('button', { type: 'button', class: 'primary', on: { click: (e) => this.retry(d.id, e.currentTarget) } }, 'Retry delivery'),
        h('button', { type: 'button', class: 'icon', 'aria-label': 'Close delivery details', title: 'Close', on: { click: () => this.close() } }, '✕')),
      h('div', { class: 'detail-id' }, h('code', { class: 'id-full' }, d.id)),
      h('dl', { class: 'facts' },
        field('Status', badge(d.status), d.in_flight ? h('span', { class: 'muted' }, ' in flight') : null),
        field('Event type', d.event_type ? h('code', null, d.event_type) : '—'),
        field('Event', h('code', { class: 'id-full' }, d.event_id)),
        c.operator ? field('Tenant', c.tenantName(d.tenant_id)) : null,
        field('Subscription', h('span', { class: 'url' }, c.subscriptionUrl(d.subscription_id))),
        field('Attempts', String(d.attempts ?? attempts.length)),
        field('Next attempt', d.next_attempt_at ? time(d.next_attempt_at) : '—'),
        field('Created', when(d.created_at)),
        d.last_error ? field('Last error', h('span', { class: 'error-text' }, d.last_error)) : null),
      h('h3', null, `Attempts (${attempts.length})`),
      attempts.length
        ? h('ol', { class: 'attempts', 'aria-label': 'Attempts', reversed: true }, attempts.map((a) => this.attempt(a)))
        : h('p', { class: 'muted' }, 'No attempt yet.'));
  }

  attempt(a) {
    const headers = headerPairs(a.request_headers);
    return h('li', { class: 'attempt', 'aria-label': `Attempt ${a.attempt}` },
      h('div', { class: 'attempt-head' },
        h('strong', null, `Attempt ${a.attempt}`),
        answer(a.status_code, a.error_kind),
        a.status_code != null && a.error_kind && a.error_kind !== 'http_status' ? h('span', { class: 'code code-bad' }, a.error_kind) : null,
        h('span', { class: 'muted' }, duration(a.duration_ms)),
        h('span', { class: 'spacer' }),
        h('span', { class: 'muted', title: when(a.started_at) }, whenShort(a.started_at))),
      a.error ? h('p', { class: 'error-text' }, a.error_kind ? `${a.error_kind}: ` : '', a.error) : null,
      h('div', { class: 'attempt-body' },
        h('h4', null, 'Response (first 1 KB)'),
        a.response_body ? h('pre', { class: 'body', 'aria-label': `Response to attempt ${a.attempt}` }, a.response_body) : h('p', { class: 'muted' }, 'No body.'),
        h('h4', null, 'Request headers sent'),
        headers.length
          ? h('table', { class: 'headers', 'aria-label': `Request headers of attempt ${a.attempt}` },
              h('tbody', null, headers.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v)))))
          : h('p', { class: 'muted' }, 'Not recorded.')));
  }

  async retry(id, button) {
    button.disabled = true;
    try {
      await this.ctx.api.post(`${this.ctx.base}/deliveries/${encodeURIComponent(id)}/retry`);
      this.ctx.notify('Retry queued: Herald sends it again now.');
      await this.refreshDetail();
    } catch (err) {
      if (err.status !== 401) this.ctx.notify(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  async retryFailed() {
    const subscription_id = this.f.subscription.value || undefined;
    try {
      const r = await this.ctx.api.post(`${this.ctx.base}/deliveries/retry-failed`, subscription_id ? { subscription_id } : {});
      const n = r?.retried ?? 0;
      this.ctx.notify(n === 1 ? 'Retried 1 failed delivery.' : `Retried ${n} failed deliveries.`);
      await this.load();
    } catch (err) {
      if (err.status !== 401) this.ctx.notify(err.message, 'error');
    }
  }
}

/**
 * A URL short enough for the table (the whole URL is its tooltip): no scheme, and when
 * still long, the host and the last parts of the path, which are what tell endpoints apart.
 */
function bare(url, max = 25) {
  const s = String(url).replace(/^https?:\/\//, '');
  if (s.length <= max) return s;
  const slash = s.indexOf('/');
  if (slash < 0) return `${s.slice(0, max - 1)}…`;
  const host = s.slice(0, slash);
  const parts = s.slice(slash + 1).split('/');
  let tail = '';
  while (parts.length && host.length + tail.length + parts.at(-1).length + 3 <= max) tail = `/${parts.pop()}${tail}`;
  return tail ? `${host}/…${tail}` : `${s.slice(0, max - 1)}…`;
}

/** Request headers as [name, value] pairs, whichever shape they come in. */
function headerPairs(hs) {
  if (!hs) return [];
  if (Array.isArray(hs)) return hs.map((x) => (Array.isArray(x) ? [String(x[0]), String(x[1])] : [String(x?.name ?? ''), String(x?.value ?? '')]));
  if (typeof hs === 'object') return Object.entries(hs).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]);
  return [];
}
