// Types of herald/outbox (src/outbox/index.js). Written by hand: the module is plain JavaScript
// so that it runs from node_modules without a TypeScript build.

/** Anything with pg's `query(text, values)`: a pg Client, a PoolClient. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

export interface OutboxOptions {
  /** Schema of the herald_outbox table (public). Herald drains the one HERALD_OUTBOX_SCHEMA names. */
  schema?: string;
}

/** The fields of POST /admin/v1/events, in the same snake_case. */
export interface OutboxEvent {
  /** The tenant whose subscriptions receive it; checked by Herald when it drains the row. */
  tenant_id: string;
  /** What changed, e.g. `Employee`; `entity.event` must be in Herald's event catalog. */
  entity: string;
  /** How it changed, e.g. `Add`. */
  event: string;
  /** The changed record's id. */
  entity_id: string | number;
  entity_uri?: string | null;
  parent_type?: string | null;
  parent_id?: string | number | null;
  /** The payload: a JSON object, at most 32 levels deep and 256 KB of JSON. */
  data?: Record<string, unknown> | null;
  /** When it happened: a Date, an ISO-8601 date-time or unix seconds; default: the transaction's start. */
  occurred_at?: Date | string | number | null;
  /** Herald's idempotency key for the event; default: the outbox row id. */
  idempotency_key?: string | null;
}

export declare const OUTBOX_TABLE: 'herald_outbox';
export declare const OUTBOX_CHANNEL: 'herald_outbox';
export declare const OUTBOX_LAYOUT: number;

/** The SQL that creates the outbox table, its index and its wake-up trigger; safe to run again. */
export declare function outboxTableSql(opts?: OutboxOptions): string;

/** Runs outboxTableSql on `client` (joining its transaction if it is in one). */
export declare function createOutbox(client: Queryable, opts?: OutboxOptions): Promise<void>;

/**
 * Inserts one event into the outbox on `client`, which should be inside the producer's
 * transaction: Herald publishes it only if that transaction commits. Answers the outbox row id
 * (a uuid), which is the Herald event's idempotency key unless the event gives one.
 * Throws a TypeError, before writing anything, for an event Herald would certainly refuse.
 */
export declare function publish(client: Queryable, event: OutboxEvent, opts?: OutboxOptions): Promise<string>;

/** Inserts several events in one statement; answers their outbox row ids in order. */
export declare function publishMany(client: Queryable, events: readonly OutboxEvent[], opts?: OutboxOptions): Promise<string[]>;
