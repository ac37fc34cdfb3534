import { randomFillSync } from 'node:crypto';

// Branded ids: a SubscriptionId cannot be passed where an EventId is wanted.
export type TenantId = string & { readonly __brand: 'TenantId' };
export type SubscriptionId = string & { readonly __brand: 'SubscriptionId' };
export type EventId = string & { readonly __brand: 'EventId' };
export type DeliveryId = string & { readonly __brand: 'DeliveryId' };

let lastMs = 0;
let seq = 0;
// Random bytes are drawn 4 KB at a time and used 10 bytes an id.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/**
 * UUID version 7: time-ordered, so ids sort by creation and paging by id is
 * paging by time. A 12-bit counter keeps ids made in the same millisecond ordered.
 */
export function uuidv7(now = Date.now()): string {
  if (now <= lastMs) {
    seq++;
    if (seq > 0xfff) { lastMs++; seq = 0; }
    now = lastMs;
  } else {
    lastMs = now;
    seq = 0;
  }
  if (poolAt + 10 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const b = Buffer.allocUnsafe(16);
  pool.copy(b, 6, poolAt, poolAt + 10);
  poolAt += 10;
  b.writeUIntBE(now, 0, 6);
  b[6] = 0x70 | (seq >> 8);
  b[7] = seq & 0xff;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Ids made from now on sort after every id of millisecond `ms` and before: Herald calls it at
 * start with the newest id in the store, so that a process started after its clock stepped
 * back does not make ids that sort before those already stored (pages read by id would miss
 * them). Ids then carry the stored time until the clock catches up.
 */
export function noIdsBefore(ms: number): void {
  if (ms > lastMs) {
    lastMs = ms;
    seq = 0xfff; // the next id of that millisecond rolls over to the one after
  }
}

/** The millisecond a UUIDv7 carries. */
export function uuidv7Ms(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/**
 * A UUIDv7 of a chosen millisecond, random past the time: for records made as if at another
 * time (tests and benchmarks of retention), which uuidv7() cannot make since it never goes back.
 */
export function uuidv7At(ms: number): string {
  const b = Buffer.allocUnsafe(16);
  randomFillSync(b);
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID_RE.test(s);
}
