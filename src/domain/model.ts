import type { DeliveryId, EventId, SubscriptionId, TenantId } from './ids.ts';
import type { DeliveryState, Dialect, ErrorKind } from './states.ts';

export interface Tenant {
  id: TenantId;
  /** A small integer per tenant, for dialects whose ids are numbers. */
  number: number;
  name: string;
  clientId: string;
  createdAt: number;
}

export interface TenantCredentialHashes {
  clientSecretHash: string;
  subscriptionKeyHash: string;
  apiTokenHash: string;
}

/** A signing secret as stored: encrypted, with the time it stops signing (null: current). */
export interface StoredSecret {
  enc: string;
  expiresAt: number | null;
}

/**
 * How a subscription's deliveries are ordered. 'none': each is sent as soon as it is due,
 * many at once. 'entity': the deliveries of one entity (tenant, entity type, entity_id) are
 * sent one at a time, in publish order, each after the one before it has succeeded, failed
 * for good or been cancelled; different entities still go in parallel.
 */
export const ORDERINGS = ['none', 'entity'] as const;
export type Ordering = (typeof ORDERINGS)[number];

export interface Subscription {
  id: SubscriptionId;
  tenantId: TenantId;
  dialect: Dialect;
  url: string;
  description: string;
  filters: string[];
  /** Paused: deliveries are created but held until it is unpaused. */
  paused: boolean;
  /** Not enabled: no deliveries are created for it at all (an unverified subscription, say). */
  enabled: boolean;
  /** Dialect-visible state: active, disabled, pending, verified, unreachable... */
  status: string;
  secrets: StoredSecret[];
  headers: Record<string, string>;
  properties: Record<string, string>;
  ordering: Ordering;
  createdAt: number;
  updatedAt: number;
}

export interface NewSubscription {
  tenantId: TenantId;
  dialect: Dialect;
  url: string;
  description: string;
  filters: string[];
  paused: boolean;
  enabled: boolean;
  status: string;
  secrets: StoredSecret[];
  headers: Record<string, string>;
  properties: Record<string, string>;
  /** Unset: 'none'. */
  ordering?: Ordering;
}

export type SubscriptionPatch = Partial<Pick<Subscription, 'url' | 'description' | 'filters' | 'paused' | 'enabled' | 'status' | 'secrets' | 'headers' | 'properties' | 'ordering'>>;

export interface HeraldEvent {
  id: EventId;
  tenantId: TenantId;
  entity: string;
  event: string;
  entityId: string;
  entityUri: string | null;
  parentType: string | null;
  parentId: string | null;
  data: Record<string, unknown>;
  occurredAt: number;
  createdAt: number;
  idempotencyKey: string | null;
}

export type NewEvent = Omit<HeraldEvent, 'id' | 'createdAt'>;

export interface PublishResult {
  event: HeraldEvent;
  deliveries: number;
  /** True when an earlier publish with the same idempotency key is being returned. */
  duplicate: boolean;
}

export interface Delivery {
  id: DeliveryId;
  tenantId: TenantId;
  eventId: EventId;
  subscriptionId: SubscriptionId;
  status: DeliveryState;
  attempts: number;
  /** Of those attempts, the ones answered with Retry-After that did not use up a retry. */
  throttled?: number;
  nextAttemptAt: number | null;
  /** True while a dispatcher holds the lease. */
  inFlight: boolean;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface Attempt {
  id: number;
  deliveryId: DeliveryId;
  attemptNo: number;
  startedAt: number;
  durationMs: number;
  statusCode: number | null;
  errorKind: ErrorKind | null;
  error: string | null;
  responseBody: string | null;
  worker: string | null;
  /** The headers sent, secret-looking custom values redacted; null for attempts recorded before Herald kept them. */
  requestHeaders: Record<string, string> | null;
}

/** What the dispatcher gets for a claimed delivery: everything needed to send it. */
export interface ClaimedDelivery {
  delivery: Delivery;
  leaseToken: string;
  event: HeraldEvent;
  subscription: Subscription;
  /** The owning tenant's small integer, for dialects whose tenant ids are numbers. */
  tenantNumber: number;
  /** The subscription's failed attempts in a row when it was claimed (auto-disable); absent: unknown. */
  failureStreak?: number;
}

export interface AttemptRecord {
  startedAt: number;
  durationMs: number;
  statusCode: number | null;
  errorKind: ErrorKind | null;
  error: string | null;
  responseBody: string | null;
  worker: string;
  /** The headers sent, with secret-looking custom values already redacted (see dispatch/requestHeaders.ts). */
  requestHeaders?: Record<string, string> | null;
}

export type Outcome =
  | { kind: 'succeeded' }
  /** `throttled`: the receiver asked to wait (Retry-After), and the attempt does not use up a retry. */
  | { kind: 'retry'; at: number; throttled?: boolean }
  /**
   * Out of retries. With `exhaustedStatus`, a subscription that has had no success since
   * this delivery was created takes that status and stops receiving (Gusto's unreachable).
   */
  | { kind: 'failed'; exhaustedStatus?: string }
  /** The receiver answered 410 Gone: the delivery fails and the subscription is disabled. */
  | { kind: 'gone' };

export interface EventFilter {
  tenantId: TenantId;
  /** Only events created at or after this time. */
  since: number;
  /** Only these `Entity.Event` types; undefined means every type. */
  types?: string[];
  parentId?: string;
  /** Page after this id, in the order asked for. */
  after?: string;
  order: 'asc' | 'desc';
  limit: number;
}

export interface LastAttempt {
  statusCode: number | null;
  startedAt: number;
}

export interface DeliveryFilter {
  tenantId?: TenantId;
  subscriptionId?: SubscriptionId;
  eventId?: EventId;
  status?: DeliveryState;
  /** Page newest first: only ids older than this one. */
  before?: DeliveryId;
  limit: number;
}
