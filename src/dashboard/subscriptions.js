// Subscriptions with their health over the last hour. The operator pauses and resumes
// them; a tenant rotates a secret or sends itself a test event.
import { fill, h, select, throttle } from './dom.js';
import { answer, badge, percent, time, when } from './format.js';

export class Subscriptions {
  /** ctx as for Deliveries, plus showDeliveries(sub) and openDelivery(id). */
  constructor(ctx) {
    this.ctx = ctx;
    this.rows = new Map();
    this.next = null;
    this.reloadSoon = throttle(() => this.load(), 3000);
    this.el = this.build();
  }

  build() {
    const c = this.ctx;
    this.notice = h('div', { class: 'notices' });
    this.error = h('p', { class: 'error', role: 'alert', hidden: true });
    this.tbody = h('tbody');
    const head = ['Endpoint', c.operator ? 'Tenant' : null, 'Dialect', 'State', 'Success (1 h)', 'Last attempt', 'Actions'].filter(Boolean);
    this.table = h('table', { class: 'grid subscriptions', 'aria-label': 'Subscriptions' },
      h('thead', null, h('tr', null, head.map((x) => h('th', { scope: 'col' }, x)))), this.tbody);
    this.more = h('button', { type: 'button', class: 'secondary', hidden: true, on: { click: () => this.load(true) } }, 'Show more');
    this.empty = h('p', { class: 'empty', hidden: true }, 'No subscriptions.');
    let filter = null;
    if (c.operator) {
      const t = select('Tenant', 'sub_tenant', [['', 'All tenants'], ...[...c.tenants.values()].map((t) => [t.id, t.name])]);
      t.input.addEventListener('change', () => this.load());
      this.tenant = t.input;
      filter = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter subscriptions', on: { submit: (e) => e.preventDefault() } }, t.el);
    }
    return h('div', null,
      h('div', { class: 'toolbar' }, h('h2', null, 'Subscriptions'), h('div', { class: 'spacer' }),
        h('button', { type: 'button', class: 'secondary', on: { click: () => this.load() } }, 'Refresh')),
      filter, this.notice, this.error, h('div', { class: 'table-wrap' }, this.table), this.empty, h('div', { class: 'pager' }, this.more));
  }

  async load(more = false) {
    const c = this.ctx;
    // Only the latest request's answer is shown (a tab shown and a live reload may overlap).
    const seq = this.seq = (this.seq ?? 0) + 1;
    try {
      let items;
      if (c.operator) {
        const res = await c.api.get(`${c.base}/subscriptions`, { tenant_id: this.tenant?.value, limit: 100, cursor: more ? this.next : undefined });
        items = res?.data ?? [];
        this.next = res?.next_cursor ?? null;
      } else {
        items = (await c.api.get(`${c.base}/subscriptions`))?.data ?? [];
        this.next = null;
      }
      if (seq !== this.seq) return;
      this.error.hidden = true;
      if (!more) { this.rows.clear(); this.tbody.replaceChildren(); }
      for (const s of items) {
        c.subscriptions.set(s.id, s);
        this.tbody.append(this.row(s));
      }
      this.more.hidden = !this.next;
      this.empty.hidden = this.rows.size > 0;
    } catch (err) {
      if (err.status === 401) return;
      this.error.textContent = err.message;
      this.error.hidden = false;
    }
  }

  row(s) {
    const c = this.ctx;
    const hl = s.health ?? {};
    const actions = [];
    if (c.operator) {
      const paused = !!s.paused;
      actions.push(h('button', { type: 'button', class: 'secondary', 'aria-label': `${paused ? 'Resume' : 'Pause'} ${s.url}`, on: { click: (e) => this.pause(s, !paused, e.currentTarget) } }, paused ? 'Resume' : 'Pause'));
    } else {
      actions.push(
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Send a test event to ${s.url}`, on: { click: (e) => this.test(s, e.currentTarget) } }, 'Send test event'),
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Rotate the secret of ${s.url}`, on: { click: (e) => this.rotate(s, e.currentTarget) } }, 'Rotate secret'));
    }
    actions.push(h('button', { type: 'button', class: 'link', 'aria-label': `Deliveries to ${s.url}`, on: { click: () => c.showDeliveries(s) } }, 'Deliveries'));
    const rate = hl.success_rate_1h;
    const tr = h('tr', { 'data-id': s.id },
      h('td', { class: 'endpoint' }, h('div', { class: 'url', title: s.url }, s.url), s.description ? h('div', { class: 'muted small' }, s.description) : null),
      c.operator ? h('td', null, s.tenant_name ?? c.tenantName(s.tenant_id)) : null,
      h('td', null, s.dialect ?? '—'),
      h('td', null, badge(hl.state ?? (s.paused ? 'paused' : 'idle'))),
      h('td', { class: 'num' }, h('span', { class: rate == null ? 'muted' : rate >= 0.99 ? 'rate-ok' : rate >= 0.9 ? 'rate-warn' : 'rate-bad' }, percent(rate)),
        hl.attempts_1h ? h('span', { class: 'muted small' }, ` of ${hl.attempts_1h}`) : null),
      h('td', null, hl.last_attempt_at ? [answer(hl.last_status_code, hl.last_error_kind), ' ', time(hl.last_attempt_at)] : h('span', { class: 'muted' }, 'never')),
      h('td', null, h('div', { class: 'actions' }, actions)));
    const old = this.rows.get(s.id);
    this.rows.set(s.id, tr);
    if (old) old.replaceWith(tr);
    return tr;
  }

  async pause(s, pause, button) {
    const c = this.ctx;
    button.disabled = true;
    try {
      const updated = await c.api.post(`${c.base}/subscriptions/${encodeURIComponent(s.id)}/${pause ? 'pause' : 'resume'}`);
      const next = updated && updated.id ? updated : { ...s, paused: pause };
      c.subscriptions.set(next.id, next);
      this.row(next);
      c.notify(pause ? `Paused ${s.url}: its deliveries wait until it is resumed.` : `Resumed ${s.url}: held deliveries go out now.`);
    } catch (err) {
      button.disabled = false;
      if (err.status !== 401) c.notify(err.message, 'error');
    }
  }

  async test(s, button) {
    const c = this.ctx;
    button.disabled = true;
    try {
      const r = await c.api.post(`${c.base}/subscriptions/${encodeURIComponent(s.id)}/test`);
      const id = r?.delivery_id;
      c.notify(`Test event sent to ${s.url}.`, 'ok', id ? { label: 'Open its delivery', run: () => c.openDelivery(id) } : undefined);
    } catch (err) {
      if (err.status !== 401) c.notify(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  async rotate(s, button) {
    const c = this.ctx;
    button.disabled = true;
    try {
      const r = await c.api.post(`${c.base}/subscriptions/${encodeURIComponent(s.id)}/rotate-secret`);
      this.showSecret(s, r?.secret ?? '', r?.previous_secrets_valid_until ?? null);
    } catch (err) {
      if (err.status !== 401) c.notify(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  /** The new secret, once: it is in this panel only until it is dismissed. */
  showSecret(s, secret, validUntil) {
    const field = h('input', { type: 'text', readOnly: true, value: secret, class: 'secret', 'aria-label': 'New signing secret', spellcheck: 'false', autocomplete: 'off' });
    const copy = h('button', {
      type: 'button', class: 'secondary',
      on: {
        click: async () => {
          field.select();
          try { await navigator.clipboard.writeText(secret); copy.textContent = 'Copied'; } catch { copy.textContent = 'Press Ctrl+C'; }
        },
      },
    }, 'Copy');
    const panel = h('section', { class: 'secret-panel', role: 'alert', 'aria-label': 'New signing secret' },
      h('h3', null, 'New signing secret for ', h('span', { class: 'url' }, s.url)),
      h('p', { class: 'warning' }, 'Copy it now: Herald shows it only this once and cannot show it again.'),
      h('div', { class: 'secret-row' }, field, copy),
      h('p', { class: 'muted' }, validUntil
        ? `The previous secret keeps signing beside the new one until ${when(validUntil)}, so update your receiver before then.`
        : 'Update your receiver to verify with the new secret.'),
      h('button', { type: 'button', class: 'primary', on: { click: () => { field.value = ''; panel.remove(); } } }, 'I have saved it'));
    fill(this.notice, panel);
    field.focus();
    field.select();
  }

  /** A live attempt: health changes, so the table is loaded again (at most every 3 s) while it is shown. */
  onAttempt(a, visible) {
    if (visible && this.rows.has(a.subscription_id)) this.reloadSoon();
  }
}
