-- The decision in force at $4: the subject's latest record at or before it,
-- if it had not expired at it. As in consent_status.sql, an older record
-- never stands in for a newer one that had expired by then.
SELECT * FROM (
    SELECT * FROM consent_records
    WHERE tenant_id = $1 AND subject_id = $2 AND site_id = $3
      AND record_time <= $4
    ORDER BY record_time DESC, record_id DESC
    LIMIT 1
) AS latest
WHERE expire_time > $4
