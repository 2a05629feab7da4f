-- The no-op update makes RETURNING yield the existing tenant's id too.
INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
RETURNING tenant_id
