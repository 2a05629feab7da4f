-- The categories and services a site declares its banner to have, against
-- which the writer checks every decision; NULL: the site's own is its
-- tenant's (site ''), empty arrays: the site declares none, whatever its
-- tenant declares. Services are kept as 'category/service' (names cannot
-- hold '/').
ALTER TABLE sites
    ADD COLUMN declared_categories  text[],
    ADD COLUMN necessary_categories text[],
    ADD COLUMN declared_services    text[];

-- A site's declaration as a whole: its own, else its tenant's (site '').
-- One row always, NULLs when neither declares.
CREATE FUNCTION consentd_site_declaration(tenant uuid, site text)
RETURNS TABLE (declared_categories text[], necessary_categories text[], declared_services text[])
LANGUAGE sql STABLE AS $$
    SELECT d.declared_categories, d.necessary_categories, d.declared_services
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN LATERAL (
        SELECT s.declared_categories, s.necessary_categories, s.declared_services
        FROM sites s
        WHERE s.tenant_id = tenant AND s.site_id IN (site, '')
          AND s.declared_categories IS NOT NULL
        ORDER BY s.site_id = site DESC
        LIMIT 1
    ) d ON true
$$;
