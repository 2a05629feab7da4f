-- Heads with leaves that no checkpoint covers yet.
SELECT tenant_id, tree_size, frontier, checkpoint_size, checkpoint_time
FROM log_heads
WHERE tree_size > checkpoint_size
