-- Labels the writer first (see consentd_write_watermark), then takes the
-- batch's record time, with the settings of every (tenant, site) in it.
SELECT consentd_mark_writer() AS label, statement_timestamp() AS now, k.tenant_id, k.site_id, s.*
FROM unnest($1::uuid[], $2::text[]) AS k (tenant_id, site_id)
CROSS JOIN LATERAL consentd_site_settings(k.tenant_id, k.site_id, $3, $4) AS s
