-- Forgets the request ids of up to $2 records recorded before $1: past the
-- retry window, a retry is a new request. SKIP LOCKED lets every replica
-- run this at once.
WITH due AS (
    SELECT tenant_id, record_id
    FROM consent_records
    WHERE request_id IS NOT NULL AND record_time < $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE consent_records c SET request_id = NULL
FROM due
WHERE (c.tenant_id, c.record_id) = (due.tenant_id, due.record_id)
