UPDATE preference_requests SET response = $3 WHERE tenant_id = $1 AND request_id = $2
