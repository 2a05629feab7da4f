-- The leaves of one sequencer batch, every tenant's. A record erased since
-- the batch was read gets a tombstone at once; an erasure still running
-- waits for this batch (log_erasure_turn.sql) and marks its leaf after.
INSERT INTO log_leaves (tenant_id, leaf_index, leaf_hash, record_id, erased)
SELECT l.tenant_id, l.leaf_index, l.leaf_hash, l.record_id,
       NOT EXISTS (SELECT 1 FROM consent_records c
                   WHERE c.tenant_id = l.tenant_id AND c.record_id = l.record_id)
FROM unnest($1::uuid[], $2::bigint[], $3::bytea[], $4::uuid[])
    AS l (tenant_id, leaf_index, leaf_hash, record_id)
