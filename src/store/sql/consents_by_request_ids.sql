SELECT c.* FROM consent_records c
JOIN unnest($1::uuid[], $2::text[]) AS k (tenant_id, request_id)
  ON (c.tenant_id, c.request_id) = (k.tenant_id, k.request_id)
