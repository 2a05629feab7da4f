-- Waits for a concurrent claim of the same id to commit, then yields nothing.
INSERT INTO preference_requests (tenant_id, request_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING
RETURNING 1
