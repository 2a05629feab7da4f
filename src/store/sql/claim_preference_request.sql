-- Waits for a concurrent claim of the same id to commit, then yields nothing.
-- $3, $4: the widget and the keyed digest of the user, for erasure.
INSERT INTO preference_requests (tenant_id, request_id, widget_id, user_hmac)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING 1
