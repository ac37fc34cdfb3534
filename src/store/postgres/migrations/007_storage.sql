-- Storage parameters for the table every delivery rewrites. Each delivery's row is written three
-- times (inserted, claimed, finished), and each version leaves a dead entry in deliveries_due
-- until vacuum removes it; the default thresholds (20 % of the table dead, 10 % changed for
-- ANALYZE) let a table of millions of rows carry hundreds of thousands of dead entries at the
-- head of the due index, which every claim and every idle poll steps over. These take effect
-- where autovacuum is on (the server's default; Herald needs it on).
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
