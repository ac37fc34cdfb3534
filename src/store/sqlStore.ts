// Herald's storage: one facade over either engine. The statements live by concern in
// src/store/queries/ (one file per verb group); this class carries the database, the clock
// and the hooks they share, and answers the Store port.
import type { EventType } from '../domain/eventTypes.ts';
import type { DeliveryId, SubscriptionId, TenantId } from '../domain/ids.ts';
import type {
  Attempt, AttemptRecord, ClaimedDelivery, Delivery, DeliveryFilter, HeraldEvent, NewEvent, NewSubscription,
  EventFilter, LastAttempt, Outcome, PublishResult, Subscription, SubscriptionPatch, Tenant, TenantCredentialHashes,
} from '../domain/model.ts';
import type { Dialect } from '../domain/states.ts';
import type { Db } from './db.ts';
import { migrate } from './migrate.ts';
import type { ClaimOptions, ClaimRoom, Store } from './store.ts';
import { systemClock, type Clock } from '../domain/clock.ts';
import type { AutoDisablePolicy } from './queries/autoDisable.ts';
import type { StoreContext } from './queries/context.ts';
import * as tenants from './queries/tenants.ts';
import * as eventTypes from './queries/eventTypes.ts';
import * as subscriptions from './queries/subscriptions.ts';
import * as publishing from './queries/publish.ts';
import * as events from './queries/events.ts';
import * as deliveries from './queries/deliveries.ts';
import * as claiming from './queries/claim.ts';
import { orderKey, promoteHeads } from './queries/lines.ts';
import * as completing from './queries/complete.ts';

export type { Completion } from './queries/complete.ts';

/** Herald's storage, one set of statements over either engine. */
export class SqlStore implements Store, StoreContext {
  readonly db: Db;
  readonly engine: Db['engine'];
  private readonly onListen: ((wake: () => void) => Promise<void>) | null;
  private readonly notifySql: string | null;
  /** Due times, leases and the in-flight test are all read on this clock, the dispatcher's own. */
  readonly clock: Clock;

  constructor(db: Db, opts: { listen?: (wake: () => void) => Promise<void>; notifySql?: string; clock?: Clock } = {}) {
    this.db = db;
    this.engine = db.engine;
    this.clock = opts.clock ?? systemClock;
    this.onListen = opts.listen ?? null;
    this.notifySql = opts.notifySql ?? null;
  }

  migrate(): Promise<number[]> {
    return migrate(this.db);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async listen(wake: (now?: boolean) => void): Promise<void> {
    this.wakeDispatcher = wake;
    if (this.onListen) await this.onListen(wake);
  }

  /** This process's dispatcher, once it listens: an ordered delivery's outcome makes the next in its line due. */
  private wakeDispatcher: ((now?: boolean) => void) | null = null;

  /**
   * Tells other processes that deliveries became due (no-op on SQLite), once `t` has
   * committed. Not inside it: a transaction that sends NOTIFY holds PostgreSQL's one
   * notification lock from before its commit until its commit record is on disk, so every
   * publish would wait for the previous one's fsync (at 500 single publishes/s the queue in
   * front of the store grew to seconds). Sent afterwards on a relaxed session, the NOTIFY
   * waits for no disk, and a burst of commits shares one. A crash between the commit and
   * the NOTIFY costs the other processes only their next poll.
   */
  async notifyDue(t: Db): Promise<void> {
    // Only PostgreSQL has something to announce, and its Db always takes an afterCommit. This
    // process does not hear its own NOTIFY (open.ts): what made the deliveries due wakes its
    // dispatcher, as on SQLite.
    if (this.notifySql) t.afterCommit?.(() => this.announce());
  }

  /** A NOTIFY in flight; another wanted meanwhile (one more is sent once it is done). */
  private announcing = false;
  private announceAgain = false;

  private announce(): void {
    if (this.announcing) {
      this.announceAgain = true;
      return;
    }
    this.announcing = true;
    void (async () => {
      try {
        do {
          this.announceAgain = false;
          await this.db.relaxed.all(this.notifySql!, [], { prepared: true });
        } while (this.announceAgain);
      } catch {
        // The other processes' poll finds what this one could not announce.
      } finally {
        this.announcing = false;
      }
    })();
  }

  /** Called after attempts are recorded, so that the dashboard's live stream looks at once rather than at its next poll. */
  onAttemptsRecorded: (() => void) | null = null;

  /** Failures in a row that take a subscription out of service (queries/autoDisable.ts); null: never. */
  autoDisable: AutoDisablePolicy | null = null;

  // ---- tenants ----
  createTenant(name: string, clientId: string, h: TenantCredentialHashes): Promise<Tenant> { return tenants.createTenant(this, name, clientId, h); }
  listTenants(): Promise<Tenant[]> { return tenants.listTenants(this); }
  getTenant(id: string): Promise<Tenant | null> { return tenants.getTenant(this, id); }
  deleteTenant(id: string): Promise<boolean> { return tenants.deleteTenant(this, id); }
  tenantByApiTokenHash(hash: string): Promise<Tenant | null> { return tenants.tenantByApiTokenHash(this, hash); }
  tenantBySubscriptionKeyHash(hash: string): Promise<Tenant | null> { return tenants.tenantBySubscriptionKeyHash(this, hash); }
  tenantCredentialsByClientId(clientId: string): Promise<(Tenant & TenantCredentialHashes) | null> { return tenants.tenantCredentialsByClientId(this, clientId); }

  // ---- catalog ----
  listEventTypes(): Promise<EventType[]> { return eventTypes.listEventTypes(this); }
  putEventType(e: EventType): Promise<boolean> { return eventTypes.putEventType(this, e); }
  seedEventTypes(types: readonly EventType[]): Promise<void> { return eventTypes.seedEventTypes(this, types); }

  // ---- subscriptions ----
  createSubscription(s: NewSubscription, notice?: string): Promise<Subscription> { return subscriptions.createSubscription(this, s, notice); }
  sendNotice(tenantId: TenantId, id: SubscriptionId, notice: string): Promise<boolean> { return subscriptions.sendNotice(this, tenantId, id, notice); }
  getSubscription(tenantId: TenantId, id: string, dialect?: Dialect): Promise<Subscription | null> { return subscriptions.getSubscription(this, tenantId, id, dialect); }
  listSubscriptions(tenantId: TenantId, dialect: Dialect): Promise<Subscription[]> { return subscriptions.listSubscriptions(this, tenantId, dialect); }
  updateSubscription(tenantId: TenantId, id: SubscriptionId, patch: SubscriptionPatch): Promise<Subscription | null> { return subscriptions.updateSubscription(this, tenantId, id, patch); }
  deleteSubscription(tenantId: TenantId, id: SubscriptionId): Promise<boolean> { return subscriptions.deleteSubscription(this, tenantId, id); }

  // ---- events ----
  publish(list: NewEvent[]): Promise<PublishResult[]> { return publishing.publish(this, list); }
  getEvent(id: string): Promise<HeraldEvent | null> { return events.getEvent(this, id); }
  listEvents(f: EventFilter): Promise<HeraldEvent[]> { return events.listEvents(this, f); }

  // ---- deliveries ----
  lastAttempt(tenantId: TenantId, dialect: Dialect): Promise<LastAttempt | null> { return deliveries.lastAttempt(this, tenantId, dialect); }
  listDeliveries(f: DeliveryFilter): Promise<Delivery[]> { return deliveries.listDeliveries(this, f); }
  getDelivery(id: string): Promise<Delivery | null> { return deliveries.getDelivery(this, id); }
  listAttempts(deliveryId: DeliveryId): Promise<Attempt[]> { return deliveries.listAttempts(this, deliveryId); }
  listAttemptsBySubscription(subscriptionId: SubscriptionId, beforeId: number | null, limit: number): Promise<Attempt[]> { return deliveries.listAttemptsBySubscription(this, subscriptionId, beforeId, limit); }
  retryNow(id: DeliveryId): Promise<Delivery | null | 'busy'> { return deliveries.retryNow(this, id); }

  // ---- dispatch ----
  claimDue(limit: number, leaseMs: number, room?: ClaimRoom, options?: ClaimOptions): Promise<ClaimedDelivery[]> { return claiming.claimDue(this, limit, leaseMs, room, options); }
  nextDueAt(): Promise<number | null> { return claiming.nextDueAt(this); }
  complete(c: ClaimedDelivery, a: AttemptRecord, outcome: Outcome): Promise<boolean> { return completing.complete(this, c, a, outcome); }
  async completeMany(items: completing.Completion[]): Promise<boolean[]> {
    const recorded = await completing.completeMany(this, items);
    // The next in an entity's line became due in that transaction (migration 006's trigger):
    // on PostgreSQL check again now it is committed (lines.ts), and look now rather than at
    // the next poll, or every step of a line would wait for one.
    const finished = items.filter((x, i) => recorded[i] && x.outcome.kind !== 'retry' && x.claim.subscription.ordering === 'entity');
    if (finished.length > 0) {
      // The trigger made the next due already, but for a publish racing with it: wake first,
      // past the wait that gathers publishes into one claim (a line's next has none to join).
      this.wakeDispatcher?.(true);
      try {
        await promoteHeads(this.db.relaxed, finished.map((x) => ({ sub: x.claim.subscription.id, key: orderKey(x.claim.event.entity, x.claim.event.entityId) })), this.clock.now());
      } catch {
        // The outcomes are recorded; only the check for that rare race was lost with the store.
      }
    }
    return recorded;
  }
  release(c: ClaimedDelivery, at: number): Promise<void> { return completing.release(this, c, at); }
}
