SELECT k.key_id, t.name, k.scopes, k.created_at, k.revoked_at, k.site_id, k.origins
FROM api_keys k JOIN tenants t USING (tenant_id)
ORDER BY t.name, k.created_at
