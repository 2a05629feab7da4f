SELECT * FROM consent_records WHERE tenant_id = $1 AND request_id = $2
