import type { HeraldEvent, Subscription } from '../domain/model.ts';

export interface Rendered {
  body: string;
  /** Herald's own headers for this attempt; they win over a subscription's custom headers. */
  headers: Record<string, string>;
}

/** How a dialect turns an event into the body and signature headers of one attempt. */
export interface RenderContext {
  /** The subscription's valid secrets in plain text, current first. */
  secrets: string[];
  nowMs: number;
  tenantNumber: number;
}

export interface Envelope {
  render(event: HeraldEvent, subscription: Subscription, ctx: RenderContext): Rendered;
  /**
   * When set, a subscription whose delivery runs out of retries with no success since, or
   * is answered 410 Gone, takes this status and stops receiving.
   */
  exhaustedStatus?: string;
}
