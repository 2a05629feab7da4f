-- A site may keep its page URLs without their query strings, which often
-- carry e-mail addresses and tokens. NULL inherits (the tenant's default,
-- else off), as the other settings do.
ALTER TABLE sites ADD COLUMN drop_query_strings boolean;

-- The effective settings gain the column: a function's result type cannot
-- change in place, so it is made again.
DROP FUNCTION consentd_site_settings(uuid, text, bigint, bigint);
CREATE FUNCTION consentd_site_settings(
    tenant uuid, site text, default_lifetime_micros bigint, default_retention_micros bigint
) RETURNS TABLE (
    detailed_logging boolean, consent_lifetime_micros bigint, retention_micros bigint,
    drop_query_strings boolean
)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(s.detailed_logging, d.detailed_logging, true),
           coalesce(s.consent_lifetime_micros, d.consent_lifetime_micros, default_lifetime_micros),
           coalesce(s.retention_micros, d.retention_micros, default_retention_micros),
           coalesce(s.drop_query_strings, d.drop_query_strings, false)
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN sites d ON d.tenant_id = tenant AND d.site_id = ''
    LEFT JOIN sites s ON s.tenant_id = tenant AND s.site_id = site
$$;
