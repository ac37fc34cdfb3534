// Drains the transactional outbox (herald_outbox, see src/outbox/index.js) into Herald's store.
//
// A batch is claimed in one transaction on the outbox's database, rows locked FOR UPDATE SKIP
// LOCKED so that several Herald processes share the table without taking the same row; the
// rows are published into Herald's store with the outbox row id as idempotency key, then
// deleted (or, when Herald refuses one, marked failed with the reason) and the claim commits.
//
// The publish and the delete are two commits, in two databases when the outbox is the
// producer's. A crash between them leaves the rows in the outbox, unlocked; the next drain
// publishes them again and Herald's store answers "duplicate" for the key it already has, so
// each row becomes exactly one Herald event. (Idempotency keys are per tenant; a uuid row id
// does not meet another row's.) The same path serves an outbox in Herald's own database: one
// code path, tested once, rather than a second one that is only faster.
import pg from 'pg';
import type { Logger } from 'pino';
import { StoreUnavailableError, ValidationError } from '../domain/errors.ts';
import { typeName } from '../domain/eventTypes.ts';
import type { NewEvent } from '../domain/model.ts';
import { parseEvent } from '../http/admin.ts';
import { pgUnavailable } from '../store/unavailable.ts';
import type { Store } from '../store/store.ts';
import { OUTBOX_CHANNEL, OUTBOX_LAYOUT, outboxTableSql } from './index.js';

export interface OutboxDrainerOptions {
  /** The database holding herald_outbox. */
  url: string;
  schema: string;
  /** Rows one drain transaction takes. */
  batch: number;
  /** Longest wait between two looks when no notification comes (a lost LISTEN connection, say). */
  pollIntervalMs: number;
  store: Pick<Store, 'publish' | 'getTenant' | 'listEventTypes'>;
  log: Logger;
  /** Called after rows were published, so this process's dispatcher looks at once. */
  wake?: () => void;
  /** Told of each drain that claimed rows (benchmarks, tests). */
  onDrain?: (r: DrainResult) => void;
}

export interface DrainResult {
  claimed: number;
  /** Rows that became new Herald events. */
  published: number;
  /** Rows whose idempotency key Herald already had: published before, by a drain that did not get to delete them. */
  duplicates: number;
  /** Rows Herald refused, kept in the outbox with failed_at and error. */
  refused: number;
  /** Rows left for later: an earlier row of their entity was being drained by another process. */
  held: number;
}

interface OutboxRow {
  id: string;
  seq: string;
  tenant_id: string;
  entity: string;
  event: string;
  entity_id: string;
  entity_uri: string | null;
  parent_type: string | null;
  parent_id: string | null;
  data: unknown;
  occurred_at: Date;
  idempotency_key: string | null;
}

/** Marks a connection as one of the drainer's, in pg_stat_activity. */
export const OUTBOX_APPLICATION_NAME = 'herald-outbox';

const ignore = (): void => undefined;

/** How soon rows held back behind another process's drain are looked at again. */
const HELD_RETRY_MS = 20;

/** Why Herald refuses a row, as kept in its error column. */
function reason(err: unknown): string {
  if (err instanceof ValidationError) return `${err.field}: ${err.message}`;
  return `Herald could not publish it: ${(err as Error).message}`;
}

/** A fault of the database or the connection rather than of the rows: the drain tries again later. */
const transient = (err: unknown) => err instanceof StoreUnavailableError || pgUnavailable(err) !== null;

export class OutboxDrainer {
  private readonly o: OutboxDrainerOptions;
  private readonly table: string;
  private pool: pg.Pool | null = null;
  private listener: pg.Client | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private waiting: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  /** A notification that came while a drain ran: the next wait returns at once. */
  private poked = false;

  constructor(o: OutboxDrainerOptions) {
    this.o = o;
    this.table = `"${o.schema}".herald_outbox`;
  }

  /** Connects, makes sure the table is there (creating it when it may), listens, and starts draining. */
  async start(): Promise<void> {
    const pool = (this.pool = new pg.Pool({
      connectionString: this.o.url, max: 2, connectionTimeoutMillis: 10_000, keepAlive: true, application_name: OUTBOX_APPLICATION_NAME,
    }));
    pool.on('error', ignore);
    let ready = true;
    try {
      await this.setUp();
    } catch (err) {
      // The producer's database being down must not keep Herald's API down: drain once it is back.
      // A table Herald may not create, or a newer layout, is a mistake to fix, and stops the start.
      if (!transient(err)) {
        await this.close();
        throw err;
      }
      ready = false;
      this.o.log.warn({ err }, 'the outbox database cannot be reached; Herald starts and drains the outbox once it can');
    }
    this.loop = this.run(ready);
  }

  private async setUp(): Promise<void> {
    await this.ensureTable();
    await this.listen(true);
  }

  /** Finishes the drain under way (its rows are published and deleted, or left for later), then disconnects. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    await this.loop;
    await this.close();
  }

  private async close(): Promise<void> {
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(ignore);
    await this.pool?.end().catch(ignore);
    this.pool = null;
  }

  /** Wakes the drain loop now (a notification, a stop). */
  poke = (): void => {
    const w = this.waiting;
    if (w) {
      this.waiting = null;
      clearTimeout(w.timer);
      w.resolve();
    } else {
      this.poked = true;
    }
  };

  private pause(ms: number): Promise<void> {
    if (this.poked || this.stopped) {
      this.poked = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiting = null; resolve(); }, ms);
      timer.unref();
      this.waiting = { timer, resolve };
    });
  }

  private async ensureTable(): Promise<void> {
    const pool = this.pool!;
    const found = await pool.query<{ t: string | null; trigger: boolean; comment: string | null }>(
      `SELECT to_regclass($1) AS t,
              EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'herald_outbox_notify' AND tgrelid = to_regclass($1)) AS trigger,
              obj_description(to_regclass($1), 'pg_class') AS comment`,
      [this.table],
    );
    const r = found.rows[0]!;
    const layout = Number(/layout (\d+)/.exec(r.comment ?? '')?.[1] ?? 0);
    if (layout > OUTBOX_LAYOUT) throw new Error(`the outbox table ${this.table} has layout ${layout}, newer than this Herald knows (${OUTBOX_LAYOUT}); upgrade Herald`);
    if (r.t && r.trigger) return;
    try {
      await pool.query(outboxTableSql({ schema: this.o.schema }));
    } catch (err) {
      if ((err as { code?: string }).code === '42501') {
        throw new Error(`the outbox table ${this.table} is missing (or its trigger is) and Herald's database role may not create it (${(err as Error).message}): `
          + "run outboxTableSql() of herald/outbox as a role that may, or grant Herald's role CREATE on the schema", { cause: err });
      }
      throw err;
    }
    this.o.log.info({ table: this.table }, 'created the outbox table');
  }

  /** LISTENs for the table's trigger; a lost connection is tried again, backing off, while the poll goes on. */
  private async listen(first: boolean, retryMs = 0): Promise<void> {
    if (this.stopped) return;
    const c = new pg.Client({ connectionString: this.o.url, connectionTimeoutMillis: 10_000, keepAlive: true, application_name: OUTBOX_APPLICATION_NAME });
    let lost = false;
    const onLost = (err: Error) => {
      if (lost || this.stopped) return;
      lost = true;
      if (this.listener === c) this.listener = null;
      c.end().catch(ignore);
      this.o.log.warn({ err }, 'the outbox LISTEN connection was lost; polling until it is back');
      const next = Math.min(retryMs ? retryMs * 2 : 250, 5000);
      setTimeout(() => { void this.listen(false, next); }, next).unref();
    };
    c.on('notification', (n) => { if (n.payload === this.o.schema) this.poke(); });
    c.on('error', onLost);
    c.on('end', () => onLost(new Error('the outbox LISTEN connection ended')));
    try {
      await c.connect();
      await c.query(`LISTEN "${OUTBOX_CHANNEL}"`);
    } catch (err) {
      if (first) {
        lost = true;
        await c.end().catch(ignore);
        throw err;
      }
      onLost(err as Error);
      return;
    }
    if (this.stopped) {
      lost = true;
      await c.end().catch(ignore);
      return;
    }
    this.listener = c;
    // Rows committed while nobody listened were announced to no one.
    if (!first) this.poke();
  }

  private async run(ready: boolean): Promise<void> {
    let backoff = 0;
    while (!ready && !this.stopped) {
      try {
        await this.setUp();
        ready = true;
      } catch (err) {
        backoff = Math.min(backoff ? backoff * 2 : 250, 5000);
        this.o.log.warn({ err }, 'setting up the outbox (its table, its LISTEN) failed; trying again in %d ms', backoff);
        await this.pause(backoff);
      }
    }
    backoff = 0;
    while (!this.stopped) {
      let r: DrainResult;
      try {
        r = await this.drainOnce();
        backoff = 0;
      } catch (err) {
        backoff = Math.min(backoff ? backoff * 2 : 250, 5000);
        this.o.log.warn({ err }, 'draining the outbox failed; its rows stay and are tried again in %d ms', backoff);
        await this.pause(backoff);
        continue;
      }
      // A full batch: more are likely waiting. Rows held back wait for another process's drain: look again soon, not at once.
      if (r.held > 0) await this.pause(Math.min(this.o.pollIntervalMs, HELD_RETRY_MS));
      else if (r.claimed < this.o.batch) await this.pause(this.o.pollIntervalMs);
    }
  }

  /** One batch: claim, publish, delete or mark, commit. Throws (leaving the rows) when a database is unavailable. */
  async drainOnce(): Promise<DrainResult> {
    const out: DrainResult = { claimed: 0, published: 0, duplicates: 0, refused: 0, held: 0 };
    const pool = this.pool;
    if (!pool) return out;
    const client = await pool.connect();
    client.on('error', ignore);
    let broken: Error | undefined;
    const refused: { id: string; error: string }[] = [];
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<OutboxRow>(
        // seq as text (a bigint, whatever the client's parsers); ordered by the column, o.seq, not by that text.
        `SELECT o.id, o.seq::text AS seq, o.tenant_id, o.entity, o.event, o.entity_id, o.entity_uri, o.parent_type, o.parent_id, o.data, o.occurred_at, o.idempotency_key
         FROM ${this.table} o WHERE o.failed_at IS NULL ORDER BY o.seq LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [this.o.batch],
      );
      out.claimed = rows.length;
      if (rows.length === 0) {
        await client.query('COMMIT');
        return out;
      }
      const held = await this.heldBack(client, rows);
      out.held = held.size;
      const ok = await this.check(held.size ? rows.filter((r) => !held.has(r.id)) : rows, refused);
      const done = await this.publish(ok, refused, out);
      if (done.length) await client.query(`DELETE FROM ${this.table} WHERE id = ANY($1::uuid[])`, [done]);
      if (refused.length) {
        await client.query(
          `UPDATE ${this.table} AS o SET failed_at = now(), error = v.error FROM unnest($1::uuid[], $2::text[]) AS v(id, error) WHERE o.id = v.id`,
          [refused.map((r) => r.id), refused.map((r) => r.error)],
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      if (pgUnavailable(err)) broken = err as Error;
      await client.query('ROLLBACK').catch(ignore);
      throw err;
    } finally {
      client.removeListener('error', ignore);
      client.release(broken);
    }
    out.refused = refused.length;
    for (const r of refused) this.o.log.warn({ outbox_id: r.id, error: r.error }, 'Herald refused an outbox row; it is kept with failed_at and error set');
    if (out.published > 0) this.o.wake?.();
    this.o.onDrain?.(out);
    return out;
  }

  /**
   * The claimed rows that must wait: an earlier row of their entity (tenant, entity type,
   * entity id) is still pending and not in this claim, so another drain holds it. Published
   * now, they could reach Herald before it, and ordered delivery (`ordering: "entity"`)
   * follows the order events reach Herald in. Left, they are claimed again once it is gone.
   */
  private async heldBack(client: pg.PoolClient, rows: OutboxRow[]): Promise<Set<string>> {
    const { rows: held } = await client.query<{ id: string }>(
      `SELECT c.id FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[]) AS c(id, seq, tenant_id, entity, entity_id)
       WHERE EXISTS (SELECT 1 FROM ${this.table} p
                     WHERE p.tenant_id = c.tenant_id AND p.entity = c.entity AND p.entity_id = c.entity_id
                       AND p.seq < c.seq AND p.seq < $6::bigint AND p.failed_at IS NULL AND p.id <> ALL($1::uuid[]))`,
      // $6, the claim's last seq, bounds the scan to the pending index's head, however long the backlog behind it.
      [rows.map((r) => r.id), rows.map((r) => r.seq), rows.map((r) => r.tenant_id), rows.map((r) => r.entity), rows.map((r) => r.entity_id), rows.at(-1)!.seq],
    );
    return new Set(held.map((r) => r.id));
  }

  /** The rows as events, checked as POST /admin/v1/events checks them; refused ones go to `refused`. */
  private async check(rows: OutboxRow[], refused: { id: string; error: string }[]): Promise<{ id: string; event: NewEvent }[]> {
    const catalog = new Set((await this.o.store.listEventTypes()).map((t) => typeName(t.entity, t.event)));
    const tenants = new Map<string, boolean>();
    const ok: { id: string; event: NewEvent }[] = [];
    for (const row of rows) {
      try {
        const raw: Record<string, unknown> = {
          tenant_id: row.tenant_id, entity: row.entity, event: row.event, entity_id: row.entity_id, data: row.data,
          occurred_at: row.occurred_at.toISOString(), idempotency_key: row.idempotency_key ?? row.id,
        };
        for (const k of ['entity_uri', 'parent_type', 'parent_id'] as const) if (row[k] !== null) raw[k] = row[k];
        const event = parseEvent(raw);
        if (!tenants.has(event.tenantId)) tenants.set(event.tenantId, (await this.o.store.getTenant(event.tenantId)) !== null);
        if (!tenants.get(event.tenantId)) throw new ValidationError('tenant_id', `tenant ${event.tenantId} does not exist`);
        const name = typeName(event.entity, event.event);
        if (!catalog.has(name)) throw new ValidationError('event', `${name} is not in the event catalog`);
        ok.push({ id: row.id, event });
      } catch (err) {
        if (transient(err)) throw err;
        // A date PostgreSQL keeps but JavaScript cannot (toISOString of year 275760 and beyond) lands here too.
        refused.push({ id: row.id, error: reason(err) });
      }
    }
    return ok;
  }

  /**
   * Publishes the checked rows in one store call; if Herald refuses that call, row by row, so
   * that one row it refuses does not hold back the rest. Answers the ids to delete.
   */
  private async publish(ok: { id: string; event: NewEvent }[], refused: { id: string; error: string }[], out: DrainResult): Promise<string[]> {
    if (ok.length === 0) return [];
    const count = (results: { duplicate: boolean }[]) => {
      for (const r of results) {
        if (r.duplicate) out.duplicates++;
        else out.published++;
      }
    };
    try {
      count(await this.o.store.publish(ok.map((r) => r.event)));
      return ok.map((r) => r.id);
    } catch (err) {
      if (transient(err)) throw err;
    }
    const done: string[] = [];
    const failures: { id: string; err: unknown }[] = [];
    for (const r of ok) {
      try {
        count(await this.o.store.publish([r.event]));
        done.push(r.id);
      } catch (err) {
        if (transient(err)) throw err;
        failures.push({ id: r.id, err });
      }
    }
    // Every row failing alike, none for its content: more likely Herald's fault than the rows'; tried again later.
    if (done.length === 0 && failures.every((f) => !(f.err instanceof ValidationError))) throw failures[0]!.err;
    for (const f of failures) refused.push({ id: f.id, error: reason(f.err) });
    return done;
  }
}
