-- The headers Herald sent with each attempt, as a JSON object, with the values of custom
-- headers that look secret already replaced; NULL for attempts recorded before this.
ALTER TABLE attempts ADD COLUMN request_headers TEXT;
