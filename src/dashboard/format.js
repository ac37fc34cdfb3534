import { h } from './dom.js';

/** Local date and time, to the second. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** The time of day when it is today, the date and time otherwise: for tight spaces. */
export function whenShort(iso, now = new Date()) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  if (d.toDateString() === now.toDateString()) return clock(iso);
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** The time of day, to the second (for the live feed, where everything is recent). */
export function clock(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** "12 s ago", "3 min ago", "in 5 s". */
export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const s = Math.round((now - t) / 1000);
  const abs = Math.abs(s);
  const text = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

/** A <time> showing how long ago, with the full date as its tooltip. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: when(iso) }, ago(iso));
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function percent(rate) {
  if (rate === null || rate === undefined) return '—';
  const p = rate * 100;
  return `${p === 100 || p === 0 ? p.toFixed(0) : p.toFixed(1)} %`;
}

/**
 * Ids are UUIDv7: the first characters are the time, shared by ids made together, so the
 * short form is the random end.
 */
export function shortId(id) {
  return id ? `…${String(id).slice(-8)}` : '—';
}

/** A short id that shows the whole one on hover and can be selected and copied whole. */
export function idCode(id) {
  return h('code', { class: 'id', title: id ?? '' }, shortId(id));
}

const STATUS_CLASS = {
  succeeded: 'ok', healthy: 'ok',
  failed: 'bad', failing: 'bad', unreachable: 'bad',
  pending: 'info', held: 'warn', paused: 'warn',
  cancelled: 'muted', disabled: 'muted', idle: 'muted',
};

/** A coloured badge for a delivery status or a subscription's health state. */
export function badge(state) {
  const s = String(state ?? 'unknown');
  return h('span', { class: ['badge', `badge-${STATUS_CLASS[s] ?? 'muted'}`] }, s);
}

/** An attempt's answer: the status code, or the kind of error when there was none. */
export function answer(statusCode, errorKind) {
  if (statusCode !== null && statusCode !== undefined) {
    const cls = statusCode >= 200 && statusCode < 300 ? 'ok' : statusCode >= 500 ? 'bad' : 'warn';
    return h('span', { class: ['code', `code-${cls}`] }, String(statusCode));
  }
  if (errorKind) return h('span', { class: 'code code-bad' }, String(errorKind));
  return h('span', { class: 'muted' }, '—');
}
