SELECT * FROM audit_events
WHERE tenant_id = $1
  AND ($2::timestamptz IS NULL OR event_time >= $2)
  AND ($3::timestamptz IS NULL OR event_time < $3)
  AND (event_time, audit_id) > ($4, $5)
  AND ($6::timestamptz IS NULL OR event_time < $6)
ORDER BY event_time, audit_id
LIMIT $7
