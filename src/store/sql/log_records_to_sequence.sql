-- Up to $4 committed records after the sequencer's cursor ($1, $2) and
-- before the write watermark ($3), in log order. No row locks: an erasure
-- of one of them waits for this batch to commit before it marks its leaf
-- (log_erasure_turn.sql).
SELECT * FROM consent_records
WHERE (record_time, record_id) > ($1, $2) AND record_time < $3
ORDER BY record_time, record_id
LIMIT $4
