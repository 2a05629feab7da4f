SELECT tenant_id, tree_size, frontier, checkpoint_size, checkpoint_time
FROM log_heads
WHERE tenant_id = ANY($1)
