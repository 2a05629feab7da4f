SELECT response FROM preference_requests WHERE tenant_id = $1 AND request_id = $2
