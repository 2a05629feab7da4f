-- The subject's latest record, if it has not expired at $4 (the server's
-- clock): an older record never stands in for a newer, expired one.
SELECT * FROM (
    SELECT * FROM consent_records
    WHERE tenant_id = $1 AND subject_id = $2 AND site_id = $3
    ORDER BY record_time DESC, record_id DESC
    LIMIT 1
) AS latest
WHERE expire_time > $4
