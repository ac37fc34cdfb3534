// Attempts as Herald makes them, newest first, from the live stream.
import { h } from './dom.js';
import { answer, badge, clock, duration, idCode, when } from './format.js';

const KEEP = 200;

export class LiveFeed {
  constructor(ctx) {
    this.ctx = ctx;
    this.tbody = h('tbody');
    this.state = h('span', { class: 'muted' }, 'Attempts appear here as Herald makes them.');
    const head = ['Time', 'Answer', 'Duration', 'Event type', ctx.operator ? 'Tenant' : null, 'Subscription', 'Attempt', 'Delivery now', 'Delivery'].filter(Boolean);
    this.empty = h('p', { class: 'empty' }, 'No attempt since this page opened.');
    this.el = h('div', null,
      h('div', { class: 'toolbar' }, h('h2', null, 'Live attempts'), h('div', { class: 'spacer' }), this.state),
      h('div', { class: 'table-wrap' },
        h('table', { class: 'grid live', 'aria-label': 'Live attempts' },
          h('thead', null, h('tr', null, head.map((x) => h('th', { scope: 'col' }, x)))), this.tbody)),
      this.empty);
  }

  add(a) {
    const c = this.ctx;
    this.empty.hidden = true;
    const tr = h('tr', { class: 'flash', 'data-delivery': a.delivery_id ?? '' },
      h('td', { title: when(a.started_at) }, clock(a.started_at)),
      h('td', null, answer(a.status_code, a.error_kind)),
      h('td', { class: 'num' }, duration(a.duration_ms)),
      h('td', null, a.event_type ? h('code', null, a.event_type) : '—'),
      c.operator ? h('td', null, c.tenantName(a.tenant_id)) : null,
      h('td', { class: 'url' }, c.subscriptionUrl(a.subscription_id)),
      h('td', { class: 'num' }, String(a.attempt ?? '')),
      h('td', null, badge(a.delivery_status)),
      h('td', null, h('button', { type: 'button', class: 'link id', 'aria-label': `Open delivery ${a.delivery_id}`, on: { click: () => c.openDelivery(a.delivery_id) } }, idCode(a.delivery_id))));
    this.tbody.prepend(tr);
    while (this.tbody.childElementCount > KEEP) this.tbody.lastElementChild.remove();
  }
}
