-- Each record's leaf (0009) as the writer that signed its receipt made it,
-- and a tag binding tenant, record id, record time and leaf, keyed by the server
-- (domain/tlog.rs, LeafTags): the sequencer reads these two columns and
-- checks the tag instead of reading the whole row back, rebuilding its
-- claims and checking its receipt. A row inserted or copied in PostgreSQL
-- has no tag that verifies, and is checked the old way, as are the rows
-- stored before this migration or with the log off (both NULL).
ALTER TABLE consent_records
    ADD COLUMN log_leaf bytea CHECK (length(log_leaf) = 32),
    ADD COLUMN log_tag  bytea CHECK (length(log_tag) = 16);
