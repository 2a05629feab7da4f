-- The leaves of one sequencer batch, every tenant's, records' and
-- preference events' (kind $5). None is erased yet: the batch was read
-- under the sequencer's lock, and an erasure takes that lock
-- (log_erasure_turn.sql) before it commits, so it marks its leaf after
-- this batch commits.
INSERT INTO log_leaves (tenant_id, leaf_index, leaf_hash, record_id, leaf_kind, erased)
SELECT l.tenant_id, l.leaf_index, l.leaf_hash, l.record_id, l.leaf_kind, false
FROM unnest($1::uuid[], $2::bigint[], $3::bytea[], $4::uuid[], $5::smallint[])
    AS l (tenant_id, leaf_index, leaf_hash, record_id, leaf_kind)
