-- The leaves of one sequencer batch, every tenant's.
INSERT INTO log_leaves (tenant_id, leaf_index, leaf_hash, record_id)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[], $4::uuid[])
