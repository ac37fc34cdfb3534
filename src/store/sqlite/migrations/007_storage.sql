-- Nothing to do on SQLite: migration 007 sets PostgreSQL's per-table autovacuum parameters.
-- Kept so that both engines number their migrations alike.
SELECT 1;
