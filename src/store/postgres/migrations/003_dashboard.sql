-- The headers Herald sent with each attempt, as a JSON object, with the values of custom
-- headers that look secret already replaced; NULL for attempts recorded before this.
ALTER TABLE attempts ADD COLUMN request_headers TEXT;

-- The dashboard lists deliveries in these states newest first; they are few beside the
-- succeeded and pending ones, so a scan of every delivery would find a page of them slowly.
-- A delivery enters this index only when it fails, is held or is cancelled: nothing on the
-- way from publish to success writes to it.
CREATE INDEX deliveries_unsettled ON deliveries (status, id) WHERE status IN ('failed', 'held', 'cancelled');
