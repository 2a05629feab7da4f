-- Up to $4 committed records after the sequencer's cursor ($1, $2) and
-- before the write watermark ($3), in log order. No row locks: an erasure
-- of one of them waits for this batch to commit before it marks its leaf
-- (log_erasure_turn.sql).
-- Only what a leaf is made of (the receipt's claims, the seal, the salt):
-- the columns the claims leave out read as absent, so the rows are small
-- and no page URL or user agent is parsed just to be dropped.
SELECT tenant_id, record_id, NULL::text AS request_id, site_id, subject_id,
       NULL::text AS user_id, action, status,
       granted_categories, denied_categories, granted_services, denied_services,
       banner_revision, regime, gpc_detected, gpc_honoured, ccpa_opt_out,
       tcf_string, gpp_string, google_ac_string, country_code, language_code,
       NULL::text AS page_url, NULL::text AS user_agent, anonymized_ip,
       client_time, record_time, expire_time, notice_version, notice_sha256,
       receipt_key_id, receipt_signature, receipt_proof, log_salt
FROM consent_records
WHERE (record_time, record_id) > ($1, $2) AND record_time < $3
ORDER BY record_time, record_id
LIMIT $4
