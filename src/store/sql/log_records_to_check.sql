-- The records of a sequencer batch, by tenant ($1) and id ($2), whose
-- writer's leaf tag is missing or does not verify: the sequencer rebuilds
-- their claims and checks their receipts (log_records_to_sequence.sql).
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
WHERE (tenant_id, record_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
