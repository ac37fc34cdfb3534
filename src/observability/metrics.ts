// Herald's Prometheus metrics, on a registry of their own (not prom-client's global one,
// so that two Heralds in one process, as in the tests, keep separate counts). Every label
// takes a bounded set of values: no URL, no event type, and subscription ids only for the
// few subscriptions that fail most.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AttemptReport, DeliveryObserver } from '../dispatch/observer.ts';
import type { PublishResult } from '../domain/model.ts';
import type { Store } from '../store/store.ts';
import type { QueueDepth } from '../store/queries/operational.ts';

/** What the metrics read at scrape time rather than count as it happens. */
export interface MetricSources {
  queueDepth?: () => Promise<QueueDepth>;
  inFlight?: () => number;
  senderThreadRestarts?: () => number;
  /** Told when a scrape-time read fails (the scrape still answers, without that figure). */
  onSourceError?: (what: string, err: unknown) => void;
}

/** `2xx` ... `5xx` for an HTTP status, `none` when no answer came. */
export function statusClass(code: number | null): string {
  return code !== null && code >= 100 && code <= 999 ? `${Math.floor(code / 100)}xx` : 'none';
}

const ATTEMPT_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30];
// From publish to a 2xx spans first tries (milliseconds) and retries (the default schedule runs for days).
const LATENCY_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86_400, 4 * 86_400];
const COMMIT_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Failed attempts per subscription, counted in this process. Only the `top` largest are
 * exposed; the map itself is bounded too: past `cap` entries the smaller half is dropped,
 * so a subscription that fails again after that starts from zero.
 */
export class FailureTally {
  private readonly counts = new Map<string, { tenantId: string; n: number }>();
  readonly top: number;
  private readonly cap: number;

  constructor(top: number) {
    this.top = top;
    this.cap = Math.max(1000, 50 * top);
  }

  add(subscriptionId: string, tenantId: string): void {
    if (this.top === 0) return;
    const e = this.counts.get(subscriptionId);
    if (e) e.n++;
    else this.counts.set(subscriptionId, { tenantId, n: 1 });
    if (this.counts.size > this.cap) {
      const keep = [...this.counts].sort((a, b) => b[1].n - a[1].n).slice(0, Math.floor(this.cap / 2));
      this.counts.clear();
      for (const [k, v] of keep) this.counts.set(k, v);
    }
  }

  /** The `top` subscriptions with the most failed attempts, most first (ties by id, so a scrape is stable). */
  busiest(): { subscriptionId: string; tenantId: string; failures: number }[] {
    return [...this.counts]
      .sort((a, b) => b[1].n - a[1].n || (a[0] < b[0] ? -1 : 1))
      .slice(0, this.top)
      .map(([subscriptionId, v]) => ({ subscriptionId, tenantId: v.tenantId, failures: v.n }));
  }
}

export class HeraldMetrics implements DeliveryObserver {
  readonly registry = new Registry();
  private sources: MetricSources = {};
  private readonly failures: FailureTally;

  private readonly eventsPublished: Counter;
  private readonly deliveriesCreated: Counter;
  private readonly outcomes: Counter<'outcome'>;
  private readonly attempts: Counter<'status_class' | 'error_kind'>;
  private readonly attemptSeconds: Histogram;
  private readonly latencySeconds: Histogram;
  private readonly commitSeconds: Histogram<'operation'>;
  private readonly autoDisables: Counter<'dialect'>;
  private readonly outboxRows: Counter<'outcome'>;

  constructor(o: { topSubscriptions: number }) {
    const registers = [this.registry];
    const self = this;
    this.failures = new FailureTally(o.topSubscriptions);
    // Process figures (CPU, memory, event-loop delay, GC) under Herald's prefix: the event
    // loop is where SQLite and the API share one thread.
    collectDefaultMetrics({ register: this.registry, prefix: 'herald_' });

    this.eventsPublished = new Counter({ name: 'herald_events_published_total', help: 'Events accepted by a publish (an idempotent repeat is not counted again).', registers });
    this.deliveriesCreated = new Counter({ name: 'herald_deliveries_created_total', help: 'Deliveries created by publishes: one per event and matching subscription.', registers });
    this.outcomes = new Counter({
      name: 'herald_delivery_outcomes_total',
      help: 'What each attempt meant for its delivery: succeeded, retry (scheduled again), failed (out of retries), gone (410), lease_lost (another dispatcher owned it), unrecorded (the store refused the write).',
      labelNames: ['outcome'], registers,
    });
    this.attempts = new Counter({
      name: 'herald_delivery_attempts_total',
      help: 'HTTP attempts by the status class of the answer (none: no answer) and the error kind (none for a 2xx).',
      labelNames: ['status_class', 'error_kind'], registers,
    });
    this.attemptSeconds = new Histogram({ name: 'herald_delivery_attempt_duration_seconds', help: 'Time from sending an attempt to the end of its answer (or its failure).', buckets: ATTEMPT_SECONDS, registers });
    this.latencySeconds = new Histogram({
      name: 'herald_delivery_latency_seconds',
      help: 'Time from an event being published to the end of the attempt that delivered it (a 2xx), retries included.',
      buckets: LATENCY_SECONDS, registers,
    });
    this.commitSeconds = new Histogram({
      name: 'herald_store_commit_duration_seconds',
      help: 'Time a store write took as its caller saw it, waiting for the connection included: publish (events and their deliveries), complete (a batch of attempt outcomes).',
      labelNames: ['operation'], buckets: COMMIT_SECONDS, registers,
    });

    this.outboxRows = new Counter({
      name: 'herald_outbox_rows_total',
      help: 'Transactional outbox rows this process drained, by outcome: published (a new event), duplicate (Herald already had its idempotency key), refused (kept in the outbox with failed_at and error).',
      labelNames: ['outcome'], registers,
    });
    for (const outcome of ['published', 'duplicate', 'refused']) this.outboxRows.inc({ outcome }, 0);
    this.autoDisables = new Counter({
      name: 'herald_subscriptions_auto_disabled_total',
      help: 'Subscriptions this process took out of service for failing too long (HERALD_AUTO_DISABLE_FAILURES attempts in a row over HERALD_AUTO_DISABLE_AFTER_SECONDS), by dialect.',
      labelNames: ['dialect'], registers,
    });
    new Gauge({
      name: 'herald_queue_depth',
      help: 'Pending deliveries in the store, all processes: due (their time has come), scheduled (waiting for a retry time), leased (held by a dispatcher), in_line (an ordered delivery waiting for an earlier one of its entity). Read at scrape time.',
      labelNames: ['state'], registers,
      async collect() {
        this.reset();
        if (!self.sources.queueDepth) return;
        try {
          const d = await self.sources.queueDepth();
          for (const state of ['due', 'scheduled', 'leased'] as const) this.set({ state }, d[state]);
          this.set({ state: 'in_line' }, d.inLine);
        } catch (err) {
          // No figure rather than a wrong one, and the rest of the scrape still answers.
          self.sources.onSourceError?.('queue depth', err);
        }
      },
    });
    new Gauge({
      name: 'herald_deliveries_in_flight', help: 'Attempts this process is sending now.', registers,
      collect() { this.set(self.sources.inFlight?.() ?? 0); },
    });
    new Counter({
      name: 'herald_sender_thread_restarts_total', help: 'Sender threads started to replace one that died.', registers,
      collect() {
        this.reset();
        this.inc(self.sources.senderThreadRestarts?.() ?? 0);
      },
    });
    new Counter({
      name: 'herald_subscription_failed_attempts_total',
      help: `Failed attempts (anything but a 2xx) of the ${o.topSubscriptions} subscriptions that failed most since this process started; others are left out to bound the series.`,
      labelNames: ['subscription_id', 'tenant_id'], registers,
      collect() {
        this.reset();
        for (const b of self.failures.busiest()) this.inc({ subscription_id: b.subscriptionId, tenant_id: b.tenantId }, b.failures);
      },
    });
  }

  /** Figures read at scrape time, set once the parts they come from exist. */
  watch(s: MetricSources): void {
    this.sources = { ...this.sources, ...s };
  }

  attempt(r: AttemptReport): void {
    const res = r.result;
    this.attempts.inc({ status_class: statusClass(res.statusCode), error_kind: res.errorKind ?? 'none' });
    this.attemptSeconds.observe(res.durationMs / 1000);
    this.outcomes.inc({ outcome: r.recorded === true ? r.outcome : r.recorded === false ? 'lease_lost' : 'unrecorded' });
    if (r.outcome === 'succeeded') {
      if (r.recorded === true) this.latencySeconds.observe(Math.max(0, res.startedAt + res.durationMs - r.claim.event.createdAt) / 1000);
    } else {
      this.failures.add(r.claim.subscription.id, r.claim.delivery.tenantId);
    }
  }

  /** A subscription was taken out of service for failing too long. */
  /** One outbox drain's rows (src/outbox/drainer.ts). */
  outboxDrained(r: { published: number; duplicates: number; refused: number }): void {
    if (r.published) this.outboxRows.inc({ outcome: 'published' }, r.published);
    if (r.duplicates) this.outboxRows.inc({ outcome: 'duplicate' }, r.duplicates);
    if (r.refused) this.outboxRows.inc({ outcome: 'refused' }, r.refused);
  }

  autoDisabled(dialect: string): void {
    this.autoDisables.inc({ dialect });
  }

  published(results: PublishResult[]): void {
    for (const r of results) {
      if (r.duplicate) continue;
      this.eventsPublished.inc();
      this.deliveriesCreated.inc(r.deliveries);
    }
  }

  /** Times a store write under `operation`. */
  async timed<T>(operation: 'publish' | 'complete', write: () => Promise<T>): Promise<T> {
    const end = this.commitSeconds.startTimer({ operation });
    try {
      return await write();
    } finally {
      end();
    }
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * Wraps the store's two hot writes in place, timing them and counting what a publish
 * created, so neither the routes that publish nor the dispatcher need to know of metrics.
 */
export function instrumentStore(store: Pick<Store, 'publish' | 'completeMany'>, m: HeraldMetrics): void {
  const publish = store.publish.bind(store);
  const completeMany = store.completeMany.bind(store);
  store.publish = async (events) => {
    const results = await m.timed('publish', () => publish(events));
    m.published(results);
    return results;
  };
  store.completeMany = (items) => m.timed('complete', () => completeMany(items));
}
