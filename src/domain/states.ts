// Every state is listed once; the SQL migrations hold the same literals.
export const DELIVERY_STATES = ['pending', 'held', 'succeeded', 'failed', 'cancelled'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** Error kinds recorded on an attempt that got no HTTP answer (or an unusable one). */
export const ERROR_KINDS = ['timeout', 'connection', 'refused_address', 'dns', 'tls', 'http_status', 'internal'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

export const DIALECTS = ['native', 'paycor', 'gusto'] as const;
export type Dialect = (typeof DIALECTS)[number];
