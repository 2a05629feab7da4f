-- The batch's record time, with the settings of every (tenant, site) in it.
-- Runs after mark_writer.sql in its own statement: statement_timestamp() is
-- when a statement starts, so it must start after the label is visible.
SELECT statement_timestamp() AS now, k.tenant_id, k.site_id, s.*
FROM unnest($1::uuid[], $2::text[]) AS k (tenant_id, site_id)
CROSS JOIN LATERAL consentd_site_settings(k.tenant_id, k.site_id, $3, $4) AS s
