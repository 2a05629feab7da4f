INSERT INTO consent_records (
    tenant_id, record_id, request_id, site_id, subject_id, user_id,
    action, status, granted_categories, denied_categories,
    granted_services, denied_services, banner_revision, regime,
    gpc_detected, gpc_honoured, ccpa_opt_out,
    tcf_string, gpp_string, google_ac_string,
    country_code, language_code, page_url,
    user_agent, device_type, os, browser, anonymized_ip,
    client_time, record_time, expire_time,
    notice_version, notice_sha256, ip_ciphertext, ip_key_id, receipt
) VALUES (
    $1, $2, $3, $4, $5, $6,
    $7, $8, $9, $10,
    $11, $12, $13, $14,
    $15, $16, $17,
    $18, $19, $20,
    $21, $22, $23,
    $24, $25, $26, $27, $28,
    $29, $30, $31,
    $32, $33, $34, $35, $36
)
ON CONFLICT (tenant_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
RETURNING *
