import type { Dialect } from '../domain/states.ts';
import type { Envelope } from './envelope.ts';
import { nativeEnvelope } from './native/envelope.ts';
import { gustoEnvelope } from './gusto/envelope.ts';
import { paycorEnvelope } from './paycor/envelope.ts';

export function envelopes(o: { paycorSignatureHeader: string }): Partial<Record<Dialect, Envelope>> {
  return {
    native: nativeEnvelope,
    paycor: paycorEnvelope(o.paycorSignatureHeader),
    gusto: gustoEnvelope,
  };
}
