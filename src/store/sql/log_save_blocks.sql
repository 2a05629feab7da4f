-- The blocks a sequencer batch completed (see migration 0011).
INSERT INTO log_blocks (tenant_id, level, block_index, hash)
SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::bigint[], $4::bytea[])
