-- Bookkeeping of the migrations themselves belongs to no tenant: it is kept
-- in a schema of its own.
CREATE SCHEMA IF NOT EXISTS consentd_meta
