INSERT INTO erasure_audit (tenant_id, audit_id, key_id, scope, site_id, subject_hmac, user_hmac, erased_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
