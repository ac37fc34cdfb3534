import type { Dialect } from '../domain/states.ts';
import type { Envelope } from './envelope.ts';
import { nativeEnvelope } from './native/envelope.ts';

export const ENVELOPES: Partial<Record<Dialect, Envelope>> = {
  native: nativeEnvelope,
};
