-- Erasure of a user must reach the responses kept for their request ids,
-- which hold the user id, the options and the titles. A stored response is
-- found by its widget and an HMAC-SHA-256 of the user id under the audit
-- key (see AuditKey::digest, kind 'preference_request.user_id'), never by
-- the raw id. Responses stored before this migration name no user, so no
-- erasure could find them: they go now, and a retry of one is a new
-- request, as after the retry window.
DELETE FROM preference_requests;
ALTER TABLE preference_requests
    ADD COLUMN widget_id text NOT NULL,
    ADD COLUMN user_hmac bytea NOT NULL;
CREATE INDEX preference_requests_user ON preference_requests (tenant_id, user_hmac);

-- Request ids are remembered for a window only (AIP-155): the workers'
-- queues of ids to forget, across tenants.
CREATE INDEX preference_requests_created ON preference_requests (created_at);
CREATE INDEX consent_records_request_time
    ON consent_records (record_time) WHERE request_id IS NOT NULL;
