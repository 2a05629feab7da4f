-- Up to $2 records whose expire time plus their site's retention is before
-- $1 ($3, $4: the server's default lifetime and retention); how many went
-- from each site, for the audit trail.
WITH due AS (
    SELECT c.tenant_id, c.record_id
    FROM consent_records c
    CROSS JOIN LATERAL consentd_site_settings(c.tenant_id, c.site_id, $3, $4) AS s
    WHERE c.expire_time < $1
      AND c.expire_time + s.retention_micros * interval '1 microsecond' < $1
    LIMIT $2
), deleted AS (
    DELETE FROM consent_records c
    USING due
    WHERE (c.tenant_id, c.record_id) = (due.tenant_id, due.record_id)
    RETURNING c.tenant_id, c.site_id, c.record_id
)
-- The ids, so their leaves in the log become tombstones.
SELECT tenant_id, site_id, count(*) AS deleted, array_agg(record_id) AS record_ids
FROM deleted
GROUP BY tenant_id, site_id
