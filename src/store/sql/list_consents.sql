-- Keyset page: rows after the cursor ($9, $10), before the watermark ($11),
-- at most $12. An export runs it without watermark and limit, in a snapshot.
SELECT * FROM consent_records
WHERE tenant_id = $1 AND site_id = $2
  AND ($3::timestamptz IS NULL OR record_time >= $3)
  AND ($4::timestamptz IS NULL OR record_time < $4)
  AND ($5::text IS NULL OR subject_id = $5)
  AND ($6::text IS NULL OR user_id = $6)
  AND ($7::text IS NULL OR country_code = $7)
  AND ($8::smallint IS NULL OR status = $8)
  AND (record_time, record_id) > ($9, $10)
  AND ($11::timestamptz IS NULL OR record_time < $11)
ORDER BY record_time, record_id
LIMIT $12
