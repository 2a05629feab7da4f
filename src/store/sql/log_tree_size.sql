SELECT coalesce((SELECT tree_size FROM log_heads WHERE tenant_id = $1), 0) AS tree_size
