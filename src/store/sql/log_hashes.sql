-- The stored nodes ($2 levels, $3 indexes) one proof of the tenant's log
-- is made of: level 0 is a leaf, a higher level a block (log_blocks).
SELECT 0::smallint AS level, l.leaf_index AS node_index, l.leaf_hash AS hash
FROM log_leaves l
JOIN unnest($2::smallint[], $3::bigint[]) AS w (level, node_index)
  ON w.level = 0 AND l.leaf_index = w.node_index
WHERE l.tenant_id = $1
UNION ALL
SELECT b.level, b.block_index, b.hash
FROM log_blocks b
JOIN unnest($2::smallint[], $3::bigint[]) AS w (level, node_index)
  ON (b.level, b.block_index) = (w.level, w.node_index)
WHERE b.tenant_id = $1
