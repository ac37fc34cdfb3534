-- Attempts answered with Retry-After (429 or 503) that did not use up a retry: the receiver
-- asked to be sent the delivery later, and Herald waited without counting it against the
-- schedule, for as long as the schedule would have lasted.
ALTER TABLE deliveries ADD COLUMN throttled INTEGER NOT NULL DEFAULT 0;
