-- The first $2 leaf hashes of the tenant's log, in order.
SELECT coalesce(array_agg(leaf_hash ORDER BY leaf_index), '{}') AS hashes
FROM log_leaves
WHERE tenant_id = $1 AND leaf_index < $2
