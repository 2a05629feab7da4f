-- Keyset page (or, without $8 and $9, a whole export) of a widget's events.
SELECT * FROM preference_events
WHERE tenant_id = $1 AND widget_id = $2
  AND ($3::text IS NULL OR user_id = $3)
  AND ($4::timestamptz IS NULL OR event_time >= $4)
  AND ($5::timestamptz IS NULL OR event_time < $5)
  AND (event_time, event_id) > ($6, $7)
  AND ($8::timestamptz IS NULL OR event_time < $8)
ORDER BY event_time, event_id
LIMIT $9
