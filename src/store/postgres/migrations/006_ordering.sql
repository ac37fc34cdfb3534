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

-- Publishing to a line and sending a finished delivery again both take its place at the end:
-- they hold this lock until their transaction ends, so that each sees what the one before it
-- committed, and two processes publishing to one entity at once are put in one order, the
-- order their transactions commit in. Keyed by schema too, since advisory locks are
-- database-wide. Outcomes never take it (they come in batches of many entities, in no set
-- order, and would deadlock with publishes): a publish that parks a delivery behind a head
-- whose outcome commits at the same moment, unseen, is caught by the check each side makes
-- once it has committed (src/store/queries/lines.ts). Lines share 256 locks, so that a batch
-- fanned out to many ordered subscriptions takes at most 256 (the server's lock table is
-- sized by max_locks_per_transaction); two publishes of different entities that share one
-- only wait for each other's commit.
CREATE FUNCTION herald_order_bucket(sub TEXT, okey TEXT) RETURNS INTEGER LANGUAGE sql IMMUTABLE
AS $$ SELECT hashtext(sub || '/' || okey) & 255 $$;

CREATE FUNCTION herald_order_lock(sub TEXT, okey TEXT) RETURNS void LANGUAGE sql VOLATILE
AS $$ SELECT pg_advisory_xact_lock(hashtext('herald_order:' || current_schema()), herald_order_bucket(sub, okey)) $$;

CREATE FUNCTION herald_order_lock_bucket(bucket INTEGER) RETURNS void LANGUAGE sql VOLATILE
AS $$ SELECT pg_advisory_xact_lock(hashtext('herald_order:' || current_schema()), bucket) $$;

-- The head finished (succeeded, failed for good, cancelled): the next in line is due now.
CREATE FUNCTION herald_order_next() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
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

-- Before a delivery of a line becomes unfinished or due again. A finished one sent again (by
-- hand, by a recovery job) takes the place after the last of its entity's line; it stays due,
-- and the claim passes it by until those before it are finished (a sender that knows nothing
-- of lines cannot make the check after its commit that parking it would need). A waiting one
-- made due by something that knows nothing of lines (a resumed subscription makes all it held
-- due, a retry by hand makes one due) keeps waiting while an earlier one is unfinished: the
-- outcome that would make it due writes this very row, so the two are put in order by its row
-- lock. A BEFORE trigger sees the rows its statement changed before this one, so a statement
-- sending several of one entity again lines them up.
CREATE FUNCTION herald_order_enter() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  tail BIGINT;
BEGIN
  IF OLD.status NOT IN ('pending', 'held') THEN
    PERFORM herald_order_lock(NEW.subscription_id, NEW.order_key);
    SELECT MAX(d.order_seq) INTO tail FROM deliveries d
    WHERE d.subscription_id = NEW.subscription_id AND d.order_key = NEW.order_key AND d.status IN ('pending', 'held') AND d.id <> NEW.id;
    IF tail IS NOT NULL THEN
      NEW.order_seq := tail + 1;
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
