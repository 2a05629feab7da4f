-- Deletes up to $2 stored responses claimed before $1: past the retry
-- window, a retry is a new request. A claim in flight is not visible here,
-- so only answered requests go.
WITH due AS (
    SELECT tenant_id, request_id
    FROM preference_requests
    WHERE created_at < $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM preference_requests p
USING due
WHERE (p.tenant_id, p.request_id) = (due.tenant_id, due.request_id)
