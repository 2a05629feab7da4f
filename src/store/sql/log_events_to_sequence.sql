-- Up to $4 committed preference events after the sequencer's event cursor
-- ($1, $2) and before the write watermark ($3), in log order. No row
-- locks, as for records (log_records_to_sequence.sql).
SELECT * FROM preference_events
WHERE (event_time, event_id) > ($1, $2) AND event_time < $3
ORDER BY event_time, event_id
LIMIT $4
