-- Claims read a window of due deliveries and leave out full subscriptions: with the
-- subscription and id in the index, that needs no visit to the table.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, subscription_id, id) WHERE status = 'pending';
