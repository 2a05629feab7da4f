SELECT text, create_time FROM notices WHERE tenant_id = $1 AND notice_sha256 = $2
