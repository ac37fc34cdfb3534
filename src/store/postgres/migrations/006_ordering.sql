-- Ordered delivery per entity (subscriptions with ordering = 'entity').
--
-- A delivery of such a subscription carries order_key (its event's entity type and
-- entity_id, as a JSON array) and order_seq (its place in that entity's line). Among the
-- unfinished (pending or held) deliveries of one subscription and key, only the one with
-- the lowest order_seq, the head, is due; the others wait with next_attempt_at NULL, out of
-- the claim's reach, until the one before them succeeds, finally fails or is cancelled.
-- Deliveries of other subscriptions carry neither column: the triggers' WHEN clauses pass
-- over them without calling anything.
ALTER TABLE subscriptions ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none' CHECK (ordering IN ('none', 'entity'));
ALTER TABLE deliveries ADD COLUMN order_key TEXT;
ALTER TABLE deliveries ADD COLUMN order_seq BIGINT;

-- The unfinished deliveries of each entity's line: finding the head, the tail, and whether
-- anything comes before a delivery is one probe. A delivery leaves it when it finishes.
CREATE INDEX deliveries_order ON deliveries (subscription_id, order_key, order_seq)
  WHERE order_key IS NOT NULL AND status IN ('pending', 'held');

-- Everything that changes an entity's line (a publish adding to its end, the head finishing,
-- a delivery sent again) holds this lock until its transaction ends, so that each sees what
-- the one before it committed: two processes publishing to one entity at once are put in one
-- order, and the order their transactions commit in is the order of delivery. Keyed by
-- schema too, since advisory locks are database-wide.
CREATE FUNCTION herald_order_lock(sub TEXT, okey TEXT) RETURNS void LANGUAGE sql VOLATILE
AS $$ SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || sub || '/' || okey, 6)) $$;

-- The head finished (succeeded, failed for good, cancelled): the next in line is due now.
CREATE FUNCTION herald_order_next() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM herald_order_lock(NEW.subscription_id, NEW.order_key);
  UPDATE deliveries SET next_attempt_at = NEW.updated_at
  WHERE id = (SELECT d.id FROM deliveries d
              WHERE d.subscription_id = NEW.subscription_id AND d.order_key = NEW.order_key AND d.status IN ('pending', 'held')
              ORDER BY d.order_seq LIMIT 1)
    AND next_attempt_at IS NULL;
  RETURN NULL;
END $$;

CREATE TRIGGER deliveries_order_next AFTER UPDATE OF status ON deliveries FOR EACH ROW
WHEN (OLD.order_key IS NOT NULL AND OLD.status IN ('pending', 'held') AND NEW.status NOT IN ('pending', 'held'))
EXECUTE FUNCTION herald_order_next();

-- Before a delivery of a line becomes unfinished or due again: a finished one sent again (by
-- hand, by a recovery job) joins the end of its entity's line and waits there if anything of
-- that entity is unfinished; a waiting one made due by something that knows nothing of lines
-- (a resumed subscription makes all it held due, a retry by hand makes one due) keeps waiting
-- while an earlier one is unfinished. A BEFORE trigger sees the rows its statement changed
-- before this one, so a statement sending several of one entity again lines them up.
CREATE FUNCTION herald_order_enter() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  tail BIGINT;
BEGIN
  PERFORM herald_order_lock(NEW.subscription_id, NEW.order_key);
  IF OLD.status NOT IN ('pending', 'held') THEN
    SELECT MAX(d.order_seq) INTO tail FROM deliveries d
    WHERE d.subscription_id = NEW.subscription_id AND d.order_key = NEW.order_key AND d.status IN ('pending', 'held') AND d.id <> NEW.id;
    IF tail IS NOT NULL THEN
      NEW.order_seq := tail + 1;
      NEW.next_attempt_at := NULL;
    END IF;
  ELSIF EXISTS (SELECT 1 FROM deliveries d
                WHERE d.subscription_id = NEW.subscription_id AND d.order_key = NEW.order_key AND d.status IN ('pending', 'held')
                  AND d.order_seq < NEW.order_seq AND d.id <> NEW.id) THEN
    NEW.next_attempt_at := NULL;
  END IF;
  RETURN NEW;
END $$;

-- Every way a delivery enters, leaves or re-enters a line sets its status; claims, releases
-- and retry times do not, and fire neither trigger.
CREATE TRIGGER deliveries_order_enter BEFORE UPDATE OF status ON deliveries FOR EACH ROW
WHEN (OLD.order_key IS NOT NULL AND NEW.status IN ('pending', 'held') AND (
  OLD.status NOT IN ('pending', 'held')
  OR (NEW.status = 'pending' AND NEW.lease_token IS NULL AND NEW.next_attempt_at IS NOT NULL
      AND (OLD.status = 'held' OR (OLD.status = 'pending' AND OLD.next_attempt_at IS NULL)))))
EXECUTE FUNCTION herald_order_enter();
