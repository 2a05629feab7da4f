-- $4: the keyed digest of the user id ($3) that their stored responses are
-- found by; the responses are copies, not counted.
WITH selections AS (
    DELETE FROM preference_selections
    WHERE tenant_id = $1 AND ($2::text IS NULL OR widget_id = $2) AND user_id = $3
    RETURNING 1
), events AS (
    DELETE FROM preference_events
    WHERE tenant_id = $1 AND ($2::text IS NULL OR widget_id = $2) AND user_id = $3
    RETURNING event_id
), responses AS (
    DELETE FROM preference_requests
    WHERE tenant_id = $1 AND ($2::text IS NULL OR widget_id = $2) AND user_hmac = $4
)
SELECT (SELECT count(*) FROM selections) AS erased_selections,
       (SELECT count(*) FROM events) AS erased_events,
       -- The ids, so their leaves in the log become tombstones.
       (SELECT coalesce(array_agg(event_id), '{}') FROM events) AS event_ids
