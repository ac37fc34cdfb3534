// Every piece of the page is built here, from elements and text nodes. Data never becomes
// markup: a string child is a text node, an attribute is set by name, and no attribute
// that runs code (on*) or loads something (href, src, action...) can be set from here.

const REFUSED = /^(on|href$|src$|srcdoc$|action$|formaction$|style$|xlink:)/i;

/**
 * h('button', { class: 'x', 'aria-label': '...', on: { click } }, 'text', child, ...)
 * Props: `class`, `on` (event listeners), `hidden`/`disabled`/`value`/`checked`/
 * `selected` (set as properties), anything else as an attribute (null/false skips it).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'on') {
        for (const [type, fn] of Object.entries(v)) el.addEventListener(type, fn);
      } else if (k === 'class') {
        el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      } else if (k === 'hidden' || k === 'disabled' || k === 'value' || k === 'checked' || k === 'selected' || k === 'readOnly' || k === 'required') {
        el[k] = v;
      } else if (REFUSED.test(k)) {
        throw new Error(`h(): attribute ${k} is not set from here`);
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A <select> with a label, its options as [value, text] pairs. */
export function select(label, name, options, value = '') {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  const sel = h('select', { id, name },
    options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
  return { el: h('div', { class: 'field' }, h('label', { for: id }, label), sel), input: sel };
}

/** An <input> with a label. */
export function input(label, name, props = {}) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  const el = h('input', { id, name, ...props });
  return { el: h('div', { class: 'field' }, h('label', { for: id }, label), el), input: el };
}

/**
 * A tab list and its panels. `items` are { id, label, panel }; arrow keys move between
 * tabs as the ARIA tabs pattern has it. `onSelect(id)` runs when a tab is shown.
 */
export function tabs(label, items, onSelect = () => {}) {
  const buttons = new Map();
  const list = h('div', { role: 'tablist', 'aria-label': label, class: 'tabs' });
  let current = null;
  const show = (id, focus = false) => {
    current = id;
    for (const it of items) {
      const on = it.id === id;
      const b = buttons.get(it.id);
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      it.panel.hidden = !on;
      if (on && focus) b.focus();
    }
    onSelect(id);
  };
  for (const [i, it] of items.entries()) {
    const b = h('button', {
      type: 'button', role: 'tab', id: `tab-${it.id}`, 'aria-controls': `panel-${it.id}`, class: 'tab',
      on: {
        click: () => show(it.id),
        keydown: (e) => {
          const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
          if (step) show(items[(i + step + items.length) % items.length].id, true);
        },
      },
    }, h('span', { class: 'tab-label' }, it.label), h('span', { class: 'tab-count', hidden: true }));
    buttons.set(it.id, b);
    list.append(b);
    it.panel.id = `panel-${it.id}`;
    it.panel.setAttribute('role', 'tabpanel');
    it.panel.setAttribute('aria-labelledby', `tab-${it.id}`);
  }
  return {
    el: list,
    show,
    get current() { return current; },
    /** A small count beside a tab's name (new live attempts); 0 hides it. */
    count(id, n) {
      const c = buttons.get(id).querySelector('.tab-count');
      c.hidden = !n;
      c.textContent = n > 99 ? '99+' : String(n);
    },
  };
}

/** Runs `fn` at most once per `ms`, the last call winning (for bursts of live events). */
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn();
    }, wait);
  };
}
