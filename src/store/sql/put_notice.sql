INSERT INTO notices (tenant_id, notice_sha256, text) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING 1
