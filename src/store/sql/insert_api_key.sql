INSERT INTO api_keys (tenant_id, key_id, key_hash, scopes) VALUES ($1, $2, $3, $4)
