-- Site settings. The row with site_id '' holds the tenant's defaults; a NULL
-- setting inherits (site -> tenant default -> server default).
CREATE TABLE sites (
    tenant_id               uuid        NOT NULL REFERENCES tenants,
    site_id                 text        NOT NULL,
    detailed_logging        boolean,
    consent_lifetime_micros bigint      CHECK (consent_lifetime_micros > 0),
    retention_micros        bigint      CHECK (retention_micros >= 0),
    update_time             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, site_id)
);

-- Notice texts, by the SHA-256 of their UTF-8 bytes.
CREATE TABLE notices (
    tenant_id     uuid        NOT NULL REFERENCES tenants,
    notice_sha256 bytea       NOT NULL CHECK (length(notice_sha256) = 32),
    text          text        NOT NULL,
    create_time   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, notice_sha256)
);

ALTER TABLE consent_records
    ADD COLUMN notice_version text,
    ADD COLUMN notice_sha256  bytea,
    -- The full IP, AES-256-GCM encrypted (nonce || ciphertext) under the data
    -- key named by ip_key_id, bound to tenant and record as associated data.
    ADD COLUMN ip_ciphertext  bytea,
    ADD COLUMN ip_key_id      text,
    -- The receipt's key and signature, fixed at record time. The token is
    -- rebuilt from the row: its claims are a function of the stored fields
    -- (see domain/receipt.rs), which keeps rows small.
    ADD COLUMN receipt_key_id    text,
    ADD COLUMN receipt_signature bytea;

-- The retention worker's queue, across tenants.
CREATE INDEX consent_records_expire ON consent_records (expire_time);

-- The audit trail now covers exports, site and key changes too.
ALTER TABLE erasure_audit RENAME TO audit_events;
ALTER TABLE audit_events RENAME COLUMN erase_time TO event_time;
ALTER TABLE audit_events RENAME COLUMN erased_count TO item_count;
ALTER TABLE audit_events RENAME COLUMN site_id TO target;
-- NULL key: done with the consentd command line, not an API key.
ALTER TABLE audit_events ALTER COLUMN key_id DROP NOT NULL;
ALTER TABLE audit_events ALTER COLUMN scope DROP NOT NULL;
ALTER TABLE audit_events ADD COLUMN action text;
UPDATE audit_events SET action = replace(scope, ':', '.');
ALTER TABLE audit_events ALTER COLUMN action SET NOT NULL;
ALTER TABLE audit_events ADD COLUMN detail text;
CREATE INDEX audit_events_time ON audit_events (tenant_id, event_time, audit_id);

-- A site's effective settings: its own, else the tenant's defaults (site ''),
-- else the server's defaults passed in.
CREATE FUNCTION consentd_site_settings(
    tenant uuid, site text, default_lifetime_micros bigint, default_retention_micros bigint
) RETURNS TABLE (detailed_logging boolean, consent_lifetime_micros bigint, retention_micros bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(s.detailed_logging, d.detailed_logging, true),
           coalesce(s.consent_lifetime_micros, d.consent_lifetime_micros, default_lifetime_micros),
           coalesce(s.retention_micros, d.retention_micros, default_retention_micros)
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN sites d ON d.tenant_id = tenant AND d.site_id = ''
    LEFT JOIN sites s ON s.tenant_id = tenant AND s.site_id = site
$$;

-- Writers label their transaction until it ends, so list pages stop before
-- anything a writer may still commit. Every writer takes its record time
-- after labelling; a page reads the watermark before its own snapshot, so
-- every record older than the watermark is committed and visible to it.
-- pg_stat_activity shows other sessions' xact_start only to the same role
-- (or pg_read_all_stats): every replica must connect as the same role.
CREATE FUNCTION consentd_mark_writer() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT set_config('application_name', 'consentd-writer', true)
$$;

CREATE FUNCTION consentd_write_watermark() RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
    SELECT least(
        statement_timestamp(),
        (SELECT min(xact_start) FROM pg_stat_activity
         WHERE application_name = 'consentd-writer' AND datname = current_database())
    )
$$;

-- Labels the writer, then reads the clock: in PL/pgSQL the two happen in
-- this order, so a record time taken here always follows a visible label.
CREATE FUNCTION consentd_begin_write() RETURNS timestamptz LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM consentd_mark_writer();
    RETURN clock_timestamp();
END
$$;

-- Preference widget settings: the lifetime of a selection when an update
-- gives none (NULL: selections do not expire).
CREATE TABLE preference_widgets (
    tenant_id                 uuid        NOT NULL REFERENCES tenants,
    widget_id                 text        NOT NULL,
    selection_lifetime_micros bigint      CHECK (selection_lifetime_micros > 0),
    update_time               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, widget_id)
);
