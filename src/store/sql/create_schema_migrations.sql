-- Bookkeeping of the migrations themselves: the one table that belongs to no
-- tenant, kept in its own schema. `checksum` is the SHA-256 of the SQL run.
CREATE SCHEMA IF NOT EXISTS consentd_meta;
CREATE TABLE IF NOT EXISTS consentd_meta.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   bytea       NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
