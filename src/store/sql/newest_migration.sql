SELECT max(version) AS newest FROM consentd_meta.schema_migrations
