-- A leaf by its record ($2) or its index ($3), with its record if it is a
-- record's and stored (a preference event's is read by log_event_leaf.sql).
SELECT l.leaf_index, l.leaf_hash, l.erased, l.record_id AS leaf_record_id,
       l.leaf_kind, c.*
FROM log_leaves l
LEFT JOIN consent_records c
  ON (c.tenant_id, c.record_id) = (l.tenant_id, l.record_id) AND l.leaf_kind = 1
WHERE l.tenant_id = $1 AND ((l.record_id = $2 AND l.leaf_kind = 1) OR l.leaf_index = $3)
