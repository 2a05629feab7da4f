-- NULL keeps the current value.
INSERT INTO sites (tenant_id, site_id, detailed_logging, consent_lifetime_micros, retention_micros)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, site_id) DO UPDATE SET
    detailed_logging = coalesce(EXCLUDED.detailed_logging, sites.detailed_logging),
    consent_lifetime_micros = coalesce(EXCLUDED.consent_lifetime_micros, sites.consent_lifetime_micros),
    retention_micros = coalesce(EXCLUDED.retention_micros, sites.retention_micros),
    update_time = now()
