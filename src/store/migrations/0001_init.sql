-- Every table's primary key starts with tenant_id: it keeps tenants apart in
-- every index and lets the tables be distributed by tenant (Citus) later.

CREATE TABLE tenants (
    tenant_id  uuid        PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is kept; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    tenant_id  uuid        NOT NULL REFERENCES tenants,
    key_id     uuid        NOT NULL UNIQUE,
    key_hash   bytea       NOT NULL UNIQUE,
    scopes     text[]      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, key_id)
);

CREATE TABLE consent_records (
    tenant_id          uuid        NOT NULL REFERENCES tenants,
    record_id          uuid        NOT NULL,
    request_id         text,
    site_id            text        NOT NULL,
    subject_id         text        NOT NULL,
    user_id            text,
    action             smallint    NOT NULL,
    status             smallint    NOT NULL,
    granted_categories text[]      NOT NULL,
    denied_categories  text[]      NOT NULL,
    -- "category/service": names cannot contain '/'.
    granted_services   text[]      NOT NULL,
    denied_services    text[]      NOT NULL,
    banner_revision    text,
    regime             smallint    NOT NULL,
    gpc_detected       boolean     NOT NULL,
    gpc_honoured       boolean     NOT NULL,
    ccpa_opt_out       boolean     NOT NULL,
    tcf_string         text,
    gpp_string         text,
    google_ac_string   text,
    country_code       text,
    language_code      text,
    page_url           text,
    user_agent         text,
    device_type        text,
    os                 text,
    browser            text,
    -- The anonymised network only (/24 or /48); the full IP is never stored.
    anonymized_ip      text,
    client_time        timestamptz,
    record_time        timestamptz NOT NULL,
    expire_time        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, record_id)
);

-- AIP-155 idempotency: one record per request id and tenant.
CREATE UNIQUE INDEX consent_records_request_id
    ON consent_records (tenant_id, request_id) WHERE request_id IS NOT NULL;
-- Lists and exports: a site's records in keyset order.
CREATE INDEX consent_records_site_time
    ON consent_records (tenant_id, site_id, record_time, record_id);
-- Current status of a subject on a site, and erasure of a subject.
CREATE INDEX consent_records_subject
    ON consent_records (tenant_id, subject_id, site_id, record_time);
-- Erasure and filtering by the tenant's user id.
CREATE INDEX consent_records_user
    ON consent_records (tenant_id, user_id) WHERE user_id IS NOT NULL;

-- One row per erasure. Identifiers are kept only as HMAC-SHA-256 under the
-- server's audit key: an auditor holding an identifier can check it was
-- erased, the table alone does not reveal it.
CREATE TABLE erasure_audit (
    tenant_id     uuid        NOT NULL REFERENCES tenants,
    audit_id      uuid        NOT NULL,
    key_id        uuid        NOT NULL,
    scope         text        NOT NULL,
    site_id       text,
    subject_hmac  bytea,
    user_hmac     bytea,
    erased_count  bigint      NOT NULL,
    erase_time    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, audit_id)
);
