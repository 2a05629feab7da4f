-- Labels the writer and takes the batch's record time after the label is
-- visible (consentd_begin_write), with the settings of every (tenant, site)
-- in the batch, and the categories each declares: one round trip.
WITH began AS MATERIALIZED (SELECT consentd_begin_write() AS now)
SELECT began.now, k.tenant_id, k.site_id, s.*, d.*
FROM began
CROSS JOIN unnest($1::uuid[], $2::text[]) AS k (tenant_id, site_id)
CROSS JOIN LATERAL consentd_site_settings(k.tenant_id, k.site_id, $3, $4) AS s
CROSS JOIN LATERAL consentd_site_declaration(k.tenant_id, k.site_id) AS d
