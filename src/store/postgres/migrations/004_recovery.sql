-- Bulk recovery jobs: which failed deliveries to send again, and how far the job has got.
-- The job's rows are its whole state, so a Herald that restarts (or another process on the
-- same store) carries on from `cursor`, the last delivery id already handled.
CREATE TABLE recoveries (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  subscription_id TEXT REFERENCES subscriptions(id) ON DELETE CASCADE,
  since BIGINT NOT NULL,
  until BIGINT NOT NULL,
  status_code INTEGER,
  error_kind TEXT,
  state TEXT NOT NULL CHECK (state IN ('running', 'done', 'cancelled')),
  total BIGINT NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  skipped INTEGER NOT NULL DEFAULT 0,
  cursor TEXT,
  owner TEXT,
  lease_until BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE INDEX recoveries_running ON recoveries (created_at) WHERE state = 'running';
CREATE INDEX recoveries_tenant ON recoveries (tenant_id, id);

-- Auto-disable: failed attempts in a row to each subscription, and when the first of them
-- was made. A success sets both back.
ALTER TABLE subscriptions ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN failing_since BIGINT;

-- A recovery job reads the failed deliveries of one subscription or one tenant in an id
-- (time) range. Only a delivery that fails, or stops being failed, writes to these.
CREATE INDEX deliveries_failed_subscription ON deliveries (subscription_id, id, updated_at, last_status_code) WHERE status = 'failed';
CREATE INDEX deliveries_failed_tenant ON deliveries (tenant_id, id, updated_at, last_status_code) WHERE status = 'failed';
