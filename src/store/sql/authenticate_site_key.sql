SELECT tenant_id, key_id, site_id, origins FROM api_keys
WHERE key_hash = $1 AND revoked_at IS NULL AND kind = 'publishable'
