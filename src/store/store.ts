import type { EventType } from '../domain/eventTypes.ts';
import type { DeliveryId, EventId, SubscriptionId, TenantId } from '../domain/ids.ts';
import type {
  Attempt, AttemptRecord, ClaimedDelivery, Delivery, DeliveryFilter, HeraldEvent, NewEvent, NewSubscription,
  EventFilter, LastAttempt, Outcome, PublishResult, Subscription, SubscriptionPatch, Tenant, TenantCredentialHashes,
} from '../domain/model.ts';
import type { Dialect } from '../domain/states.ts';

/** How many more deliveries each subscription can take now; subscriptions not listed can take `otherwise`. */
export interface ClaimRoom {
  bySubscription: Map<string, number>;
  otherwise: number;
}

/** How a claim treats leases that look run out. */
export interface ClaimOptions {
  /**
   * Take over a run-out lease only if it ran out at or before this time (default: now). A
   * dispatcher whose clock jumped forward passes the time as it was, since the leases other
   * processes hold look run out on the new clock while they are still sending.
   */
  leaseCutoff?: number;
}

/** The port every storage engine implements; one contract test suite runs against each. */
export interface Store {
  readonly engine: 'sqlite' | 'postgres';
  migrate(): Promise<number[]>;
  close(): Promise<void>;
  /**
   * Calls `wake` when another process makes deliveries due (PostgreSQL LISTEN/NOTIFY), and
   * `wake(true)` when an outcome made the next delivery of an entity's line due.
   */
  listen(wake: (now?: boolean) => void): Promise<void>;

  createTenant(name: string, clientId: string, hashes: TenantCredentialHashes): Promise<Tenant>;
  listTenants(): Promise<Tenant[]>;
  getTenant(id: string): Promise<Tenant | null>;
  deleteTenant(id: string): Promise<boolean>;
  tenantByApiTokenHash(hash: string): Promise<Tenant | null>;
  tenantBySubscriptionKeyHash(hash: string): Promise<Tenant | null>;
  tenantCredentialsByClientId(clientId: string): Promise<(Tenant & TenantCredentialHashes) | null>;

  listEventTypes(): Promise<EventType[]>;
  /** Adds an entry or changes its description; answers whether it was new. */
  putEventType(t: EventType): Promise<boolean>;
  /** Adds the entries that are missing, leaving existing descriptions alone. */
  seedEventTypes(types: readonly EventType[]): Promise<void>;

  /** With a notice, the subscription and the notice's delivery are written together. */
  createSubscription(s: NewSubscription, notice?: string): Promise<Subscription>;
  /** Queues a notice (NOTICE_ENTITY) to one subscription, whatever its state; false when it is gone. */
  sendNotice(tenantId: TenantId, id: SubscriptionId, notice: string): Promise<boolean>;
  getSubscription(tenantId: TenantId, id: string, dialect?: Dialect): Promise<Subscription | null>;
  listSubscriptions(tenantId: TenantId, dialect: Dialect): Promise<Subscription[]>;
  /** Pausing holds its waiting deliveries; unpausing makes the held ones due now. */
  updateSubscription(tenantId: TenantId, id: SubscriptionId, patch: SubscriptionPatch): Promise<Subscription | null>;
  /** Gone for good: its waiting deliveries are cancelled, its records stay. */
  deleteSubscription(tenantId: TenantId, id: SubscriptionId): Promise<boolean>;

  /** Events and their deliveries, all in one transaction. */
  publish(events: NewEvent[]): Promise<PublishResult[]>;
  getEvent(id: string): Promise<HeraldEvent | null>;
  /** A tenant's published events (notices excluded), paged by id. */
  listEvents(f: EventFilter): Promise<HeraldEvent[]>;
  /** The latest attempt to any of a tenant's subscriptions of one dialect. */
  lastAttempt(tenantId: TenantId, dialect: Dialect): Promise<LastAttempt | null>;
  listDeliveries(filter: DeliveryFilter): Promise<Delivery[]>;
  getDelivery(id: string): Promise<Delivery | null>;
  listAttempts(deliveryId: DeliveryId): Promise<Attempt[]>;
  listAttemptsBySubscription(subscriptionId: SubscriptionId, beforeId: number | null, limit: number): Promise<Attempt[]>;
  /** Makes a delivery due now. Null when it is unknown; 'busy' when it is in flight or its subscription cannot take it. */
  retryNow(id: DeliveryId): Promise<Delivery | null | 'busy'>;

  /** Leases up to `limit` due deliveries, oldest due first, no more for a subscription than it has room for. */
  claimDue(limit: number, leaseMs: number, room?: ClaimRoom, options?: ClaimOptions): Promise<ClaimedDelivery[]>;
  /** Records the attempt and its outcome; false when the lease was lost to another worker. */
  complete(claim: ClaimedDelivery, attempt: AttemptRecord, outcome: Outcome): Promise<boolean>;
  /** The same for many outcomes in one transaction; answers for each whether it was recorded. */
  completeMany(items: { claim: ClaimedDelivery; attempt: AttemptRecord; outcome: Outcome }[]): Promise<boolean[]>;
  /** Gives a claimed delivery back without an attempt, due again at `at`. */
  release(claim: ClaimedDelivery, at: number): Promise<void>;
  /** When the earliest waiting delivery is due, or null when none waits. */
  nextDueAt(): Promise<number | null>;
}

export type { EventId };
