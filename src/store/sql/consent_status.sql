-- $4: now, by the server's clock.
SELECT * FROM consent_records
WHERE tenant_id = $1 AND subject_id = $2 AND site_id = $3 AND expire_time > $4
ORDER BY record_time DESC, record_id DESC
LIMIT 1
