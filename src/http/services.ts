import type { Config } from '../config.ts';
import type { AddressGuard } from '../dispatch/addressGuard.ts';
import type { ListenHub } from '../dispatch/listenHub.ts';
import type { Poster } from '../dispatch/sender.ts';
import type { Operational } from './operational.ts';
import type { SecretBox } from '../secrets.ts';
import type { Store } from '../store/store.ts';
import type { DashboardStore } from '../store/queries/dashboard.ts';

/** What the HTTP routes are given; nothing below reads the environment. */
export interface Services {
  config: Config;
  store: Store;
  box: SecretBox;
  guard: AddressGuard;
  /** Wakes this process's dispatcher after a publish or a release of held deliveries. */
  wake: () => void;
  /** For one-off sends outside the delivery engine (a dialect's test event). */
  sender: Poster;
  userAgent: string;
  /** Readiness and metrics for /readyz and /metrics; without it neither is served. */
  operational?: Operational;
  /** The dashboard's and portal's store verbs (lists with filters, health, bulk retry, test events, the live stream). */
  dashboard: DashboardStore;
  /** This process's `herald listen` streams; without it the listen routes answer 409. */
  listen?: ListenHub;
}
