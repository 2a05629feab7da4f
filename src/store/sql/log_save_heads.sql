INSERT INTO log_heads (tenant_id, tree_size, frontier)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[])
ON CONFLICT (tenant_id) DO UPDATE
SET tree_size = excluded.tree_size, frontier = excluded.frontier
