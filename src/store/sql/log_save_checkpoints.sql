-- Signed checkpoints, and each head's note of its latest.
WITH saved AS (
    INSERT INTO log_checkpoints (tenant_id, tree_size, root_hash, note, create_time)
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[], $4::text[], $5::timestamptz[])
    RETURNING tenant_id, tree_size, create_time
)
UPDATE log_heads h
SET checkpoint_size = saved.tree_size, checkpoint_time = saved.create_time
FROM saved
WHERE h.tenant_id = saved.tenant_id
