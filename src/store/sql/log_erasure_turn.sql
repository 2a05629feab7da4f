-- An erasure waits for a sequencer batch in flight (which holds this lock
-- alone) to commit, so that the next statement sees the leaves it wrote;
-- while erasures hold it shared, no sequencer batch begins.
SELECT pg_advisory_xact_lock_shared($1)
