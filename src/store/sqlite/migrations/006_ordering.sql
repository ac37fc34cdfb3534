-- Ordered delivery per entity (subscriptions with ordering = 'entity').
--
-- A delivery of such a subscription carries order_key (its event's entity type and
-- entity_id, as a JSON array) and order_seq (its place in that entity's line). Among the
-- unfinished (pending or held) deliveries of one subscription and key, only the one with
-- the lowest order_seq, the head, is due; the others wait with next_attempt_at NULL, out of
-- the claim's reach, until the one before them succeeds, finally fails or is cancelled.
-- Deliveries of other subscriptions carry neither column and never touch what follows.
ALTER TABLE subscriptions ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none' CHECK (ordering IN ('none', 'entity'));
ALTER TABLE deliveries ADD COLUMN order_key TEXT;
ALTER TABLE deliveries ADD COLUMN order_seq INTEGER;

-- The unfinished deliveries of each entity's line: finding the head, the tail, and whether
-- anything comes before a delivery is one probe. A delivery leaves it when it finishes.
CREATE INDEX deliveries_order ON deliveries (subscription_id, order_key, order_seq)
  WHERE order_key IS NOT NULL AND status IN ('pending', 'held');

-- One trigger, so that an update of a delivery of no line (every one of an unordered
-- subscription) costs one WHEN test. Every way a delivery enters, leaves or re-enters a line
-- sets its status; claims, releases and retry times do not, and fire nothing.
CREATE TRIGGER deliveries_order AFTER UPDATE OF status ON deliveries
WHEN OLD.order_key IS NOT NULL
BEGIN
  -- It finished (succeeded, failed for good, cancelled): the next in line is due now.
  UPDATE deliveries SET next_attempt_at = NEW.updated_at
  WHERE OLD.status IN ('pending', 'held') AND NEW.status NOT IN ('pending', 'held')
    AND id = (SELECT d.id FROM deliveries d
              WHERE d.subscription_id = NEW.subscription_id AND d.order_key = NEW.order_key AND d.status IN ('pending', 'held')
              ORDER BY d.order_seq LIMIT 1)
    AND next_attempt_at IS NULL;
  -- A finished one sent again (by hand, by a recovery job): it joins the end of its entity's
  -- line, and waits there if anything of that entity is unfinished. Each row of a statement
  -- that sends several again sees those before it, so they line up in the statement's order.
  UPDATE deliveries SET
    next_attempt_at = CASE WHEN EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.subscription_id = NEW.subscription_id AND d.order_key = NEW.order_key AND d.status IN ('pending', 'held') AND d.id <> NEW.id
      ) THEN NULL ELSE next_attempt_at END,
    order_seq = COALESCE((
        SELECT MAX(d.order_seq) + 1 FROM deliveries d
        WHERE d.subscription_id = NEW.subscription_id AND d.order_key = NEW.order_key AND d.status IN ('pending', 'held') AND d.id <> NEW.id
      ), order_seq)
  WHERE OLD.status NOT IN ('pending', 'held') AND NEW.status IN ('pending', 'held') AND id = NEW.id;
  -- A waiting one made due by something that knows nothing of lines (a resumed subscription
  -- makes all it held due, a retry by hand makes one due): it keeps waiting while an earlier
  -- one of its entity is unfinished.
  UPDATE deliveries SET next_attempt_at = NULL
  WHERE OLD.status IN ('pending', 'held') AND NEW.status = 'pending' AND NEW.lease_token IS NULL AND NEW.next_attempt_at IS NOT NULL
    AND (OLD.status = 'held' OR OLD.next_attempt_at IS NULL)
    AND id = NEW.id AND EXISTS (
      SELECT 1 FROM deliveries d
      WHERE d.subscription_id = NEW.subscription_id AND d.order_key = NEW.order_key AND d.status IN ('pending', 'held') AND d.order_seq < NEW.order_seq
    );
END;
