-- Up to $4 committed records after the sequencer's cursor ($1, $2) and
-- before the write watermark ($3), in log order: only where each is and
-- the leaf its writer made and tagged (0012), about 90 bytes a record.
-- No row locks: the sequencer holds its lock from this read to its commit,
-- and an erasure waits for it before it marks its leaf
-- (log_erasure_turn.sql).
SELECT tenant_id, record_id, record_time, log_leaf, log_tag
FROM consent_records
WHERE (record_time, record_id) > ($1, $2) AND record_time < $3
ORDER BY record_time, record_id
LIMIT $4
