-- NULL keeps the current value.
INSERT INTO sites (tenant_id, site_id, detailed_logging, consent_lifetime_micros, retention_micros,
                   drop_query_strings)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, site_id) DO UPDATE SET
    detailed_logging = coalesce(EXCLUDED.detailed_logging, sites.detailed_logging),
    consent_lifetime_micros = coalesce(EXCLUDED.consent_lifetime_micros, sites.consent_lifetime_micros),
    retention_micros = coalesce(EXCLUDED.retention_micros, sites.retention_micros),
    drop_query_strings = coalesce(EXCLUDED.drop_query_strings, sites.drop_query_strings),
    update_time = now()
