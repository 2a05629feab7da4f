-- A whole batch in one statement: one array per column, one element per
-- record. Array columns travel as comma-joined text (names cannot hold ',').
-- A request id taken earlier inserts nothing (the writer merges repeats
-- within a batch before this runs);
-- only the ids of the rows inserted come back.
INSERT INTO consent_records (
    tenant_id, record_id, request_id, site_id, subject_id, user_id,
    action, status, granted_categories, denied_categories,
    granted_services, denied_services, banner_revision, regime,
    gpc_detected, gpc_honoured, ccpa_opt_out,
    tcf_string, gpp_string, google_ac_string,
    country_code, language_code, page_url,
    user_agent, device_type, os, browser, anonymized_ip,
    client_time, record_time, expire_time,
    notice_version, notice_sha256, ip_ciphertext, ip_key_id, receipt_key_id, receipt_signature, receipt_proof
)
SELECT
    tenant_id, record_id, request_id, site_id, subject_id, user_id,
    action, status, string_to_array(granted_categories, ','), string_to_array(denied_categories, ','),
    string_to_array(granted_services, ','), string_to_array(denied_services, ','), banner_revision, regime,
    gpc_detected, gpc_honoured, ccpa_opt_out,
    tcf_string, gpp_string, google_ac_string,
    country_code, language_code, page_url,
    user_agent, device_type, os, browser, anonymized_ip,
    client_time, record_time, expire_time,
    notice_version, notice_sha256, ip_ciphertext, ip_key_id, receipt_key_id, receipt_signature, receipt_proof
FROM unnest(
    $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::int2[], $8::int2[], $9::text[], $10::text[],
    $11::text[], $12::text[], $13::text[], $14::int2[],
    $15::bool[], $16::bool[], $17::bool[],
    $18::text[], $19::text[], $20::text[],
    $21::text[], $22::text[], $23::text[],
    $24::text[], $25::text[], $26::text[], $27::text[], $28::text[],
    $29::timestamptz[], $30::timestamptz[], $31::timestamptz[],
    $32::text[], $33::bytea[], $34::bytea[], $35::text[], $36::text[], $37::bytea[], $38::bytea[]
) AS r (
    tenant_id, record_id, request_id, site_id, subject_id, user_id,
    action, status, granted_categories, denied_categories,
    granted_services, denied_services, banner_revision, regime,
    gpc_detected, gpc_honoured, ccpa_opt_out,
    tcf_string, gpp_string, google_ac_string,
    country_code, language_code, page_url,
    user_agent, device_type, os, browser, anonymized_ip,
    client_time, record_time, expire_time,
    notice_version, notice_sha256, ip_ciphertext, ip_key_id, receipt_key_id, receipt_signature, receipt_proof
)
ON CONFLICT (tenant_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
RETURNING record_id
