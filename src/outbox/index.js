// herald/outbox: what a producer runs to publish a Herald event inside its own PostgreSQL
// transaction. The event is a row of the herald_outbox table, written by the same transaction
// as the producer's change, so both commit or neither does; Herald drains the table
// (src/outbox/drainer.ts) and publishes each row once.
//
// Plain JavaScript with a hand-written declaration file (index.d.ts), like herald/verify: Node
// will not strip types from files under node_modules. It imports nothing: it works with any
// client that has pg's `query(text, values)` (a pg Client or PoolClient, in or out of a pool).
// The table's SQL lives here and only here: Herald's drainer creates the table from it too.

/** The table's name; its schema is chosen (public by default). */
export const OUTBOX_TABLE = 'herald_outbox';

/** The channel the table's trigger notifies on commit, with the schema name as payload. */
export const OUTBOX_CHANNEL = 'herald_outbox';

/** The layout of the table this module writes, in the table's comment; a later layout will say 2. */
export const OUTBOX_LAYOUT = 1;

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;
const NAME_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const EVENT_KEYS = new Set(['tenant_id', 'entity', 'event', 'entity_id', 'entity_uri', 'parent_type', 'parent_id', 'data', 'occurred_at', 'idempotency_key']);

function schemaOf(opts, fn) {
  const schema = opts?.schema ?? 'public';
  if (typeof schema !== 'string' || !SCHEMA_RE.test(schema)) throw new TypeError(`${fn}: schema must be a lower-case SQL identifier, got ${JSON.stringify(schema)}`);
  return schema;
}

/**
 * The SQL that creates the outbox in `schema` (public by default): the table, the index the
 * drain reads, and the trigger that wakes Herald when a transaction that inserted rows commits.
 * Every statement is safe to run again. Put it in your own migrations if you prefer; Herald
 * runs the same SQL on start when the table is missing and it may create it.
 */
export function outboxTableSql(opts = {}) {
  const s = schemaOf(opts, 'outboxTableSql');
  const q = `"${s}"`;
  return `-- Herald transactional outbox, layout ${OUTBOX_LAYOUT}
SELECT pg_advisory_xact_lock(hashtext('herald_outbox_ddl:${s}'));
DO $$ BEGIN
  IF to_regnamespace('${q}') IS NULL THEN CREATE SCHEMA ${q}; END IF;
END $$;
CREATE TABLE IF NOT EXISTS ${q}.herald_outbox (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  seq             bigint      GENERATED ALWAYS AS IDENTITY,
  tenant_id       text        NOT NULL,
  entity          text        NOT NULL,
  event           text        NOT NULL,
  entity_id       text        NOT NULL,
  entity_uri      text,
  parent_type     text,
  parent_id       text,
  data            jsonb       NOT NULL DEFAULT '{}',
  occurred_at     timestamptz NOT NULL DEFAULT now(),
  idempotency_key text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  failed_at       timestamptz,
  error           text
);
CREATE INDEX IF NOT EXISTS herald_outbox_pending ON ${q}.herald_outbox (seq) WHERE failed_at IS NULL;
CREATE OR REPLACE FUNCTION ${q}.herald_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM pg_notify('${OUTBOX_CHANNEL}', TG_TABLE_SCHEMA);
  RETURN NULL;
END $f$;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'herald_outbox_notify' AND tgrelid = '${q}.herald_outbox'::regclass) THEN
    CREATE TRIGGER herald_outbox_notify AFTER INSERT ON ${q}.herald_outbox
      FOR EACH STATEMENT EXECUTE FUNCTION ${q}.herald_outbox_notify();
  END IF;
END $$;
COMMENT ON TABLE ${q}.herald_outbox IS 'Herald transactional outbox, layout ${OUTBOX_LAYOUT}: rows are events Herald publishes once and deletes; rows with failed_at set were refused (see error)';
`;
}

/**
 * Creates the outbox in `schema` if it is not there. Runs as one statement batch: on a client
 * in a transaction it joins that transaction, otherwise it is a transaction of its own.
 */
export async function createOutbox(client, opts = {}) {
  await client.query(outboxTableSql(opts));
}

function text(e, key, i, { required = false, max = 2000, pattern = null } = {}) {
  const v = e[key];
  const where = i === null ? key : `events[${i}].${key}`;
  if (v === undefined || v === null) {
    if (required) throw new TypeError(`herald/outbox: ${where} is required`);
    return null;
  }
  const s = typeof v === 'number' && Number.isSafeInteger(v) && (key === 'entity_id' || key === 'parent_id') ? String(v) : v;
  if (typeof s !== 'string' || s.length === 0 || s.length > max) throw new TypeError(`herald/outbox: ${where} must be a non-empty string of at most ${max} characters`);
  if (pattern && !pattern.test(s)) throw new TypeError(`herald/outbox: ${where} must be a name of letters, digits and underscores`);
  return s;
}

function occurredAt(v, where) {
  if (v === undefined || v === null) return null;
  if (v instanceof Date && !Number.isNaN(v.getTime())) return v.toISOString();
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 1e11) return new Date(Math.round(v * 1000)).toISOString();
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v))) return v;
  throw new TypeError(`herald/outbox: ${where} must be a Date, an ISO-8601 date-time or unix seconds`);
}

/** One event's column values, checked for what a mistake in the producer's code would get wrong. */
function row(e, i) {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new TypeError(`herald/outbox: ${i === null ? 'the event' : `events[${i}]`} must be an object`);
  for (const k of Object.keys(e)) if (!EVENT_KEYS.has(k)) throw new TypeError(`herald/outbox: unknown field ${i === null ? k : `events[${i}].${k}`}`);
  const data = e.data ?? {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new TypeError(`herald/outbox: ${i === null ? 'data' : `events[${i}].data`} must be an object`);
  return [
    text(e, 'tenant_id', i, { required: true, max: 64 }),
    text(e, 'entity', i, { required: true, max: 64, pattern: NAME_RE }),
    text(e, 'event', i, { required: true, max: 64, pattern: NAME_RE }),
    text(e, 'entity_id', i, { required: true, max: 200 }),
    text(e, 'entity_uri', i),
    text(e, 'parent_type', i, { max: 64, pattern: NAME_RE }),
    text(e, 'parent_id', i, { max: 200 }),
    JSON.stringify(data),
    occurredAt(e.occurred_at, i === null ? 'occurred_at' : `events[${i}].occurred_at`),
    text(e, 'idempotency_key', i, { max: 200 }),
  ];
}

const COLUMNS = 'tenant_id, entity, event, entity_id, entity_uri, parent_type, parent_id, data, occurred_at, idempotency_key';

/**
 * Writes events into the outbox on `client`, which should be in the producer's transaction
 * (after BEGIN, before COMMIT): they reach Herald only if that transaction commits. Answers
 * the outbox row ids, in order; each becomes the idempotency key of its Herald event unless the
 * event gives its own. Checks what it can without Herald (required fields, names, types);
 * what only Herald knows (the tenant, the event catalog) is checked when Herald drains the row,
 * and a row it refuses is kept with its error rather than lost.
 */
export async function publishMany(client, events, opts = {}) {
  const s = schemaOf(opts, 'publishMany');
  if (!Array.isArray(events)) throw new TypeError('herald/outbox: publishMany takes an array of events');
  return insert(client, s, events.map((e, i) => row(e, i)));
}

/** Writes one event into the outbox on `client` (see publishMany); answers its outbox row id. */
export async function publish(client, event, opts = {}) {
  const [id] = await insert(client, schemaOf(opts, 'publish'), [row(event, null)]);
  return id;
}

async function insert(client, s, rows) {
  if (rows.length === 0) return [];
  if (rows.length === 1) {
    // The common case, one event a transaction: a plain VALUES insert plans faster than unnest.
    const res = await client.query(
      `INSERT INTO "${s}".herald_outbox (${COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, COALESCE($9::timestamptz, now()), $10) RETURNING id`,
      rows[0],
    );
    return [res.rows[0].id];
  }
  // One statement for the lot: ten arrays, unnested row by row, whatever the number of events.
  const cols = rows[0].map((_, c) => rows.map((r) => r[c]));
  const res = await client.query(
    `INSERT INTO "${s}".herald_outbox (${COLUMNS})
     SELECT t, en, ev, ei, eu, pt, pi, d::jsonb, COALESCE(o::timestamptz, now()), k
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
       WITH ORDINALITY AS v(t, en, ev, ei, eu, pt, pi, d, o, k, n)
     ORDER BY n
     RETURNING id, seq`,
    cols,
  );
  // RETURNING follows the insert's order, which follows n; sorted by seq to be sure.
  return res.rows.sort((a, b) => Number(a.seq) - Number(b.seq)).map((r) => r.id);
}
