WITH erased AS (
    DELETE FROM consent_records
    WHERE tenant_id = $1
      AND ($2::text IS NULL OR site_id = $2)
      AND (subject_id = $3 OR user_id = $4)
    RETURNING 1
)
SELECT count(*) AS erased_count FROM erased
