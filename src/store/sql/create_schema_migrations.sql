-- `checksum` is the SHA-256 of the SQL run.
CREATE TABLE IF NOT EXISTS consentd_meta.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   bytea       NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
