INSERT INTO audit_events (
    tenant_id, audit_id, key_id, scope, target, subject_hmac, user_hmac, item_count, action, detail, event_time
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, statement_timestamp())
