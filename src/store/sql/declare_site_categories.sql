-- Replaces a site's declaration; NULLs inherit the tenant's, empty arrays
-- declare none.
INSERT INTO sites (tenant_id, site_id, declared_categories, necessary_categories, declared_services)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, site_id) DO UPDATE SET
    declared_categories = EXCLUDED.declared_categories,
    necessary_categories = EXCLUDED.necessary_categories,
    declared_services = EXCLUDED.declared_services,
    update_time = now()
