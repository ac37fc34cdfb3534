import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.ts';
import { systemClock, type Clock } from './domain/clock.ts';
import { envelopes } from './dialects/index.ts';
import { DEFAULT_CATALOG } from './domain/eventTypes.ts';
import type { EventId, SubscriptionId } from './domain/ids.ts';
import { AddressGuard } from './dispatch/addressGuard.ts';
import { Dispatcher } from './dispatch/dispatcher.ts';
import { ListenHub, ListenPoster } from './dispatch/listenHub.ts';
import { Pruner } from './dispatch/pruner.ts';
import { RecoveryRunner } from './dispatch/recoveryRunner.ts';
import type { OutboxDrainer } from './outbox/drainer.ts';
import type { Poster } from './dispatch/sender.ts';
import { ThreadedSender } from './dispatch/senderThread.ts';
import { buildApp } from './http/app.ts';
import { HeraldMetrics, instrumentStore } from './observability/metrics.ts';
import { readiness } from './observability/readiness.ts';
import { queueDepth } from './store/queries/operational.ts';
import { newestIdMs } from './store/queries/events.ts';
import { noIdsBefore } from './domain/ids.ts';
import * as aside from './store/queries/breaker.ts';
import { DashboardStore } from './store/queries/dashboard.ts';
import { SecretBox } from './secrets.ts';
import { openStore, storeOptions } from './store/open.ts';
import type { SqlStore } from './store/sqlStore.ts';

export const VERSION = '0.1.0';

/** Herald's logger; `destination` (stdout when absent) lets a test read what Herald logs. */
export function makeLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: ['req.headers.authorization', 'req.headers["ocp-apim-subscription-key"]', '*.secret', '*.client_secret'] }, destination);
}

/** One Herald process: store, dispatcher and HTTP API. */
export class Herald {
  readonly config: Config;
  readonly log: Logger;
  store!: SqlStore;
  dispatcher!: Dispatcher;
  app!: FastifyInstance;
  private sender!: Poster;
  /** Null when HERALD_METRICS is off. */
  metrics: HeraldMetrics | null = null;
  listenHub!: ListenHub;
  /** Prunes records older than HERALD_RETENTION_DAYS in the background. */
  pruner: Pruner | null = null;
  /** Carries out bulk recovery jobs, whichever process they were made in. */
  recoveries: RecoveryRunner | null = null;
  /** Drains the transactional outbox when HERALD_OUTBOX is on. */
  outbox: OutboxDrainer | null = null;
  url = '';
  /** What decides when deliveries are due; tests pass a clock they can step. */
  readonly clock: Clock;

  constructor(config: Config, log?: Logger, opts: { clock?: Clock } = {}) {
    this.config = config;
    this.log = log ?? makeLogger(config.logLevel);
    this.clock = opts.clock ?? systemClock;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.store = await openStore({ ...storeOptions(c), clock: this.clock, onListenError: (err) => this.log.warn({ err }, 'LISTEN connection lost; polling until it is back') });
    const applied = await this.store.migrate();
    if (applied.length) this.log.info({ applied }, 'applied migrations');
    await this.store.seedEventTypes(DEFAULT_CATALOG);
    // New ids sort after the stored ones even if this process starts with its clock behind theirs.
    noIdsBefore(await newestIdMs(this.store));
    if (c.autoDisableFailures > 0) {
      this.store.autoDisable = {
        failures: c.autoDisableFailures, afterMs: c.autoDisableAfterMs,
        // The operator's side of the notice: a counter, and one warning line per subscription taken out of service.
        onDisabled: (d) => {
          this.metrics?.autoDisabled(d.dialect);
          this.log.warn({ subscription: d.subscriptionId, tenant: d.tenantId, dialect: d.dialect, failures: d.failures, failing_since: new Date(d.failingSince).toISOString(), noticed_to: d.noticedTo },
            'subscription taken out of service after %d failed attempts in a row', d.failures);
        },
      };
    }
    if (c.metrics) {
      const m = (this.metrics = new HeraldMetrics({ topSubscriptions: c.metricsTopSubscriptions }));
      instrumentStore(this.store, m);
      const db = this.store.db;
      m.watch({
        queueDepth: () => queueDepth(db, this.clock.now(), c.leaseMs),
        onSourceError: (what, err) => this.log.warn({ err }, 'reading the %s for /metrics failed', what),
      });
    }
    const box = new SecretBox(c.secretKey);
    const guard = new AddressGuard(c.allowPrivateNetworks, c.dnsServers);
    // Connections are per origin, and several subscriptions may share one: the pool gets the
    // process's whole budget, and the dispatcher bounds each subscription.
    // With a sender thread, the HTTP client is loaded only there, not in this thread too.
    if (c.senderThread && c.dispatch) {
      const threaded = new ThreadedSender({ allowPrivateNetworks: c.allowPrivateNetworks, dnsServers: c.dnsServers, requestTimeoutMs: c.requestTimeoutMs, connectionsPerOrigin: c.maxInFlight },
        (err) => this.log.error({ err }, 'the sender thread failed'));
      this.sender = threaded;
      this.metrics?.watch({ senderThreadRestarts: () => threaded.restarts });
      // A thread that cannot start stops Herald here, rather than failing every delivery later.
      await threaded.ready.catch(async (err: unknown) => {
        await threaded.close();
        throw err;
      });
    } else {
      this.sender = new (await import('./dispatch/sender.ts')).Sender(guard, c.requestTimeoutMs, c.maxInFlight);
    }
    // `herald listen` sessions are reached through this process's streams, not over HTTP.
    this.listenHub = new ListenHub(c.requestTimeoutMs, async (subscriptionId, eventId) =>
      (await this.store.listDeliveries({ subscriptionId: subscriptionId as SubscriptionId, eventId: eventId as EventId, limit: 1 }))[0]?.id ?? null);
    this.sender = new ListenPoster(this.sender, this.listenHub);
    this.dispatcher = new Dispatcher({
      store: this.store, sender: this.sender, box, envelopes: envelopes(c), log: this.log,
      retry: { scheduleSeconds: c.retrySchedule, jitter: c.retryJitter, maxRetryAfterSeconds: c.maxRetryAfterSeconds },
      leaseMs: c.leaseMs, pollIntervalMs: c.pollIntervalMs, claimBatch: c.claimBatch, claimCoalesceMs: c.claimCoalesceMs,
      maxInFlight: c.maxInFlight, maxInFlightPerEndpoint: c.maxInFlightPerEndpoint, userAgent: `Herald/${VERSION}`,
      worker: `${hostname()}:${process.pid}`, attemptBoundMs: 2 * c.requestTimeoutMs,
      observer: this.metrics ?? undefined, clock: this.clock,
      breaker: { failures: c.breakerFailures, firstCoolMs: 1000, maxCoolMs: c.breakerMaxMs },
      setAside: {
        setAside: (id, until, keep) => aside.setAside(this.store, id, until, keep),
        bringBack: (id, until) => aside.bringBack(this.store, id, until),
      },
    });
    this.metrics?.watch({ inFlight: () => this.dispatcher.inFlightCount });
    if (c.dispatch) await this.store.listen(this.dispatcher.wake);
    this.app = buildApp({ config: c, store: this.store, box, guard, wake: this.dispatcher.wake, sender: this.sender, userAgent: `Herald/${VERSION}`,
      dashboard: new DashboardStore(this.store),
      operational: { metrics: this.metrics, readiness: () => readiness(this.store.db, (err) => this.log.warn({ err }, '/readyz: the store is not ready')) }, listen: this.listenHub }, this.log);
    if (c.dispatch) this.dispatcher.start();
    this.pruner = new Pruner({ db: this.store.db, log: this.log, retentionMs: c.retentionMs, intervalMs: c.retentionIntervalMs, batch: c.retentionBatch, pauseMs: c.retentionPauseMs, now: () => this.clock.now() });
    this.pruner.start();
    this.recoveries = new RecoveryRunner({
      store: this.store, log: this.log, ratePerSecond: c.recoveryRatePerSecond, leaseMs: c.leaseMs, pollIntervalMs: c.pollIntervalMs,
      worker: `${hostname()}:${process.pid}`, wake: this.dispatcher.wake, now: () => this.clock.now(),
    });
    this.recoveries.start();
    if (c.outbox) {
      const { OutboxDrainer } = await import('./outbox/drainer.ts');
      this.outbox = new OutboxDrainer({ ...c.outbox, pollIntervalMs: c.pollIntervalMs, store: this.store, log: this.log, wake: this.dispatcher.wake, onDrain: (r) => this.metrics?.outboxDrained(r) });
      await this.outbox.start();
    }
    this.url = await this.app.listen({ host: c.host, port: c.port });
    this.log.info({ url: this.url, store: this.store.engine }, 'Herald is ready');
  }

  /** Stops taking requests and claiming, lets in-flight attempts finish (bounded), closes the store. */
  async stop(): Promise<void> {
    // A keep-alive connection busy when the close began goes idle after its answer, and the
    // close would wait out the keep-alive timeout (72 s) for it while claiming went on.
    const server = this.app?.server;
    const sweep = setInterval(() => server?.closeIdleConnections(), 100);
    try {
      await this.app?.close();
    } finally {
      clearInterval(sweep);
    }
    await this.dispatcher?.stop(this.config.shutdownGraceMs);
    await this.sender?.close();
    await this.pruner?.stop();
    await this.recoveries?.stop();
    await this.outbox?.stop();
    await this.store?.close();
  }
}
