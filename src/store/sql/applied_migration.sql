SELECT checksum FROM consentd_meta.schema_migrations WHERE version = $1
