// Auto-disable: each subscription's run of failed attempts, kept on its row, and what
// happens when the run is long enough in count and in time. Called from the transaction
// that records the attempts, so the run, the attempts and the decision agree.
import { uuidv7 } from '../../domain/ids.ts';
import { NOTICE_ENTITY } from '../../domain/notices.ts';
import { DISABLED_NOTICE, OUT_OF_SERVICE, type OutOfService } from '../../domain/outOfService.ts';
import type { AttemptRecord, ClaimedDelivery, Outcome } from '../../domain/model.ts';
import type { Dialect } from '../../domain/states.ts';
import type { Db } from '../db.ts';

export interface AutoDisablePolicy {
  /** Failed attempts in a row; 0 turns auto-disable off. */
  failures: number;
  /** The least time from the first of them to now. */
  afterMs: number;
  /** Told of each subscription taken out of service (the operator's log line). */
  onDisabled?: (d: Disabled) => void;
}

export interface Disabled {
  subscriptionId: string;
  tenantId: string;
  dialect: Dialect;
  status: string;
  failures: number;
  failingSince: number;
  /** The tenant's other subscriptions the notice went to. */
  noticedTo: number;
}

interface Item { claim: ClaimedDelivery; attempt: AttemptRecord; outcome: Outcome }

const ok = (a: AttemptRecord) => a.statusCode !== null && a.statusCode >= 200 && a.statusCode < 300;

/** Whether recording these outcomes has streak bookkeeping to do (and so needs a transaction). */
export function streakWork(p: AutoDisablePolicy | null, items: Item[]): boolean {
  if (!p || p.failures <= 0) return false;
  return items.some((x) => !ok(x.attempt) || (x.claim.failureStreak ?? 1) > 0);
}

/**
 * Pauses a subscription with its dialect's out-of-service status and holds what waits
 * for it; re-enabling it (unpausing) releases what was held. The single way Herald takes a
 * subscription out of service: 410 Gone, exhaustion in the Gusto style, and auto-disable.
 */
export async function takeOutOfService(t: Db, subscriptionId: string, oos: OutOfService, now: number): Promise<boolean> {
  const n = await t.run(
    `UPDATE subscriptions SET paused = TRUE, status = $2, enabled = CASE WHEN $3 THEN FALSE ELSE enabled END, updated_at = $4
     WHERE id = $1 AND deleted_at IS NULL`,
    [subscriptionId, oos.status, oos.stopsNewDeliveries, now],
  );
  await t.run("UPDATE deliveries SET status = 'held', updated_at = $2 WHERE subscription_id = $1 AND status = 'pending'", [subscriptionId, now]);
  return n > 0;
}

/** A subscription turned back on starts a new run: the failures before it do not count against it. */
export async function resetStreak(t: Db, subscriptionId: string): Promise<void> {
  await t.run('UPDATE subscriptions SET failure_streak = 0, failing_since = NULL WHERE id = $1 AND failure_streak > 0', [subscriptionId]);
}

/**
 * Brings each subscription's run up to date with the attempts just recorded, and takes out
 * of service those whose run now has `failures` attempts spanning `afterMs`. A success
 * ends the run; the claim's copy of the run says whether there is one to end, so a healthy
 * subscription's successes write nothing here. Before disabling, the run is checked against
 * the attempts themselves, since a success recorded by another process may not have ended it.
 */
export async function trackStreaks(t: Db, items: Item[], recorded: boolean[], now: number, p: AutoDisablePolicy): Promise<Disabled[]> {
  const bySub = new Map<string, { claim: ClaimedDelivery; attempts: AttemptRecord[] }>();
  items.forEach((x, i) => {
    if (!recorded[i] || x.outcome.kind === 'gone') return;
    const e = bySub.get(x.claim.subscription.id) ?? { claim: x.claim, attempts: [] };
    e.attempts.push(x.attempt);
    bySub.set(x.claim.subscription.id, e);
  });
  // Three kinds of change: a run ended (one statement for all), a run that only grew (one
  // statement for all on PostgreSQL), a run ended and begun again within the batch (rare).
  const ended: string[] = [];
  const grown: { id: string; n: number; first: number }[] = [];
  const rows: Record<string, any>[] = [];
  for (const [id, { claim, attempts }] of bySub) {
    attempts.sort((a, b) => a.startedAt - b.startedAt);
    const lastOk = attempts.findLastIndex(ok);
    const failures = attempts.slice(lastOk + 1);
    if (lastOk >= 0 && failures.length === 0) {
      if ((claim.failureStreak ?? 1) > 0) ended.push(id);
    } else if (lastOk >= 0) {
      rows.push(...await t.all('UPDATE subscriptions SET failure_streak = $2, failing_since = $3 WHERE id = $1 RETURNING *', [id, failures.length, failures[0]!.startedAt]));
    } else {
      grown.push({ id, n: failures.length, first: failures[0]!.startedAt });
    }
  }
  if (ended.length) await t.run(`UPDATE subscriptions SET failure_streak = 0, failing_since = NULL WHERE ${t.inList('id', 1)} AND failure_streak > 0`, [t.list(ended)]);
  if (grown.length && t.engine === 'postgres') {
    rows.push(...await t.all(
      `UPDATE subscriptions s SET failure_streak = s.failure_streak + v.n, failing_since = COALESCE(s.failing_since, v.first)
       FROM unnest($1::text[], $2::int[], $3::bigint[]) AS v(id, n, first) WHERE s.id = v.id AND s.deleted_at IS NULL RETURNING s.*`,
      [grown.map((g) => g.id), grown.map((g) => g.n) as unknown as string[], grown.map((g) => g.first) as unknown as string[]],
    ));
  } else {
    for (const g of grown) {
      rows.push(...await t.all(
        'UPDATE subscriptions SET failure_streak = failure_streak + $2, failing_since = COALESCE(failing_since, $3) WHERE id = $1 AND deleted_at IS NULL RETURNING *',
        [g.id, g.n, g.first],
      ));
    }
  }
  const out: Disabled[] = [];
  for (const s of rows) {
    if (!due(s, now, p)) continue;
    const id = s.id as string;
    if (!(await confirmRun(t, id, s, now, p))) continue;
    const dialect = s.dialect as Dialect;
    const oos = OUT_OF_SERVICE[dialect];
    if (!(await takeOutOfService(t, id, oos, now))) continue;
    const failingSince = Number(s.failing_since);
    const noticedTo = await noticeOthers(t, s, oos, failingSince, now);
    const d: Disabled = { subscriptionId: id, tenantId: s.tenant_id, dialect, status: oos.status, failures: Number(s.failure_streak), failingSince, noticedTo };
    out.push(d);
    p.onDisabled?.(d);
  }
  return out;
}

/** Long enough, and the subscription is one that delivers (not paused, not waiting for verification). */
function due(s: Record<string, any>, now: number, p: AutoDisablePolicy): boolean {
  return Number(s.failure_streak) >= p.failures && s.failing_since !== null && now - Number(s.failing_since) >= p.afterMs
    && !s.paused && Boolean(s.enabled) && s.deleted_at === null;
}

/**
 * The run as the attempts tell it: a success since the run began means it began after that
 * success. Runs once, when a run first looks long enough; it reads the run's attempts.
 */
async function confirmRun(t: Db, id: string, s: Record<string, any>, now: number, p: AutoDisablePolicy): Promise<boolean> {
  const okRows = await t.all<{ id: number | string }>(
    'SELECT MAX(id) AS id FROM attempts WHERE subscription_id = $1 AND started_at >= $2 AND status_code >= 200 AND status_code < 300',
    [id, Number(s.failing_since)],
  );
  const lastOk = okRows[0]?.id;
  if (lastOk === null || lastOk === undefined) return true;
  const run = await t.all<{ c: number | string; since: number | string | null }>(
    'SELECT COUNT(*) AS c, MIN(started_at) AS since FROM attempts WHERE subscription_id = $1 AND id > $2', [id, Number(lastOk)],
  );
  s.failure_streak = Number(run[0]?.c ?? 0);
  s.failing_since = run[0]?.since === null || run[0]?.since === undefined ? null : Number(run[0].since);
  await t.run('UPDATE subscriptions SET failure_streak = $2, failing_since = $3 WHERE id = $1', [id, s.failure_streak, s.failing_since]);
  return due(s, now, p);
}

/**
 * A disabled subscription cannot hear of its own disabling, so the notice goes to the
 * tenant's other subscriptions that deliver, whatever their dialect; the operator hears
 * of it through the log and the admin API (the subscription's status).
 */
async function noticeOthers(t: Db, s: Record<string, any>, oos: OutOfService, failingSince: number, now: number): Promise<number> {
  const others = await t.all<{ id: string }>(
    'SELECT id FROM subscriptions WHERE tenant_id = $1 AND id <> $2 AND deleted_at IS NULL AND enabled = TRUE AND paused = FALSE ORDER BY id',
    [s.tenant_id, s.id],
  );
  if (others.length === 0) return 0;
  const eventId = uuidv7(now);
  const data = {
    subscription_id: s.id, dialect: s.dialect, status: oos.status, reason: 'consecutive_failures',
    failures: Number(s.failure_streak), failing_since: new Date(failingSince).toISOString(),
  };
  await t.run(
    'INSERT INTO events (id, tenant_id, entity, event, entity_id, data, occurred_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)',
    [eventId, s.tenant_id, NOTICE_ENTITY, DISABLED_NOTICE, s.id, JSON.stringify(data), now],
  );
  for (const o of others) {
    await t.run(
      `INSERT INTO deliveries (id, tenant_id, event_id, subscription_id, status, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $5, $5)`,
      [uuidv7(now), s.tenant_id, eventId, o.id, now],
    );
  }
  return others.length;
}
