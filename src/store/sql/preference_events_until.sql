-- A user's events on a widget up to and including $4, oldest first: the
-- history a state as of $4 is replayed from.
SELECT * FROM preference_events
WHERE tenant_id = $1 AND widget_id = $2 AND user_id = $3
  AND event_time <= $4
ORDER BY event_time, event_id
