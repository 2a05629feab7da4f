WITH erased AS (
    DELETE FROM consent_records
    WHERE tenant_id = $1
      AND ($2::text IS NULL OR site_id = $2)
      AND (subject_id = $3 OR user_id = $4)
    RETURNING record_id
)
-- The ids, so their leaves in the log become tombstones.
SELECT count(*) AS erased_count, coalesce(array_agg(record_id), '{}') AS record_ids FROM erased
