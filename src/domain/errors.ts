// One error type per failure a caller can act on. Each dialect renders them in its own shape.

export class ValidationError extends Error {
  readonly field: string;
  readonly status: number;
  constructor(field: string, message: string, status = 400) {
    super(message);
    this.name = 'ValidationError';
    this.field = field;
    this.status = status;
  }
}

/** The input is well-formed but names something Herald does not know (an event type, say). */
export class UnprocessableError extends ValidationError {
  constructor(field: string, message: string) {
    super(field, message, 422);
    this.name = 'UnprocessableError';
  }
}

/** A published event names a tenant that does not exist; `eventIndex`: its place in the batch. */
export class UnknownTenantError extends UnprocessableError {
  readonly eventIndex: number;
  constructor(tenantId: string, eventIndex: number) {
    super('tenant_id', `tenant ${tenantId} does not exist`);
    this.eventIndex = eventIndex;
  }
}

export class NotFoundError extends Error {
  readonly resource: string;
  constructor(resource: string) {
    super(`${resource} not found`);
    this.name = 'NotFoundError';
    this.resource = resource;
  }
}

export class AuthError extends Error {
  /** The header or field that is missing or wrong, when a dialect names it. */
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.name = 'AuthError';
    this.field = field;
  }
}

export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

/**
 * The store cannot take the request for now: the database is unreachable or refused the
 * connection, or the disk is full. Nothing was written (or, for a write whose commit was cut
 * off, it may have been: a publish retried with its idempotency key is not stored twice).
 * Trying again later may work, so callers are told when.
 */
export class StoreUnavailableError extends Error {
  /** `full`: out of disk space; `unreachable`: anything else that should pass by itself. */
  readonly reason: 'unreachable' | 'full';
  constructor(reason: 'unreachable' | 'full', message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'StoreUnavailableError';
    this.reason = reason;
  }
}

/** The Retry-After, in seconds, of an answer refused because the store is unavailable. */
export const STORE_RETRY_AFTER_SECONDS = 5;
