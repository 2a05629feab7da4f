-- A leaf by its record ($2) or its index ($3), with its record if stored.
SELECT l.leaf_index, l.leaf_hash, l.erased, l.record_id AS leaf_record_id,
       c.*
FROM log_leaves l
LEFT JOIN consent_records c
  ON (c.tenant_id, c.record_id) = (l.tenant_id, l.record_id)
WHERE l.tenant_id = $1 AND (l.record_id = $2 OR l.leaf_index = $3)
