-- The leaf of a preference event ($2), with the event if stored.
SELECT l.leaf_index, l.leaf_hash, l.erased, l.record_id AS leaf_record_id,
       e.*
FROM log_leaves l
LEFT JOIN preference_events e
  ON (e.tenant_id, e.event_id) = (l.tenant_id, l.record_id)
WHERE l.tenant_id = $1 AND l.record_id = $2 AND l.leaf_kind = 2
