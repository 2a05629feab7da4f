-- Up to $4 committed records after the sequencer's cursor ($1, $2) and
-- before the write watermark ($3), in log order. KEY SHARE holds off an
-- erasure of them until their leaves are committed, so it finds them.
SELECT * FROM consent_records
WHERE (record_time, record_id) > ($1, $2) AND record_time < $3
ORDER BY record_time, record_id
LIMIT $4
FOR KEY SHARE
