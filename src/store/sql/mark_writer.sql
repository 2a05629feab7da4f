-- Labels this transaction as a consent writer until it ends, so that list
-- pages stop before anything it may still commit (see list_watermark.sql).
SET LOCAL application_name = 'consentd-writer'
