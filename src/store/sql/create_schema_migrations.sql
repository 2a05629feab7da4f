-- Bookkeeping of the migrations themselves: the one table that belongs to no
-- tenant, kept in its own schema.
CREATE SCHEMA IF NOT EXISTS consentd_meta;
CREATE TABLE IF NOT EXISTS consentd_meta.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
