INSERT INTO api_keys (tenant_id, key_id, key_hash, scopes, kind, site_id, origins)
VALUES ($1, $2, $3, '{consent:write}', 'publishable', $4, $5)
