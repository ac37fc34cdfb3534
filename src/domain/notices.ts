/**
 * A notice is a message from Herald itself to one subscription (a verification token,
 * say), carried as an event of this reserved entity so that it is delivered, retried and
 * recorded like any other. Catalog names start with a letter, so no one can publish one.
 */
export const NOTICE_ENTITY = '$herald';

/** `test`: an event the subscriber asked for from the portal, to check its receiver. */
export const NOTICES = { verification: 'verification', test: 'test' } as const;

export const isNotice = (entity: string) => entity === NOTICE_ENTITY;
