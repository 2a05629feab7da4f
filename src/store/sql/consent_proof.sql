SELECT c.*, EXISTS (
    SELECT 1 FROM notices n WHERE n.tenant_id = c.tenant_id AND n.notice_sha256 = c.notice_sha256
) AS notice_on_file
FROM consent_records c
WHERE c.tenant_id = $1 AND c.record_id = $2
