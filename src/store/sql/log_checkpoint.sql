-- The tenant's latest checkpoint, or the one of size $2.
SELECT tree_size, root_hash, note, create_time
FROM log_checkpoints
WHERE tenant_id = $1 AND ($2::bigint IS NULL OR tree_size = $2)
ORDER BY tree_size DESC
LIMIT 1
