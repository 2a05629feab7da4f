-- Publishable site keys: embedded in pages, so each is bound to one site
-- and a list of origins, and only the public listener accepts it. Every
-- key before this migration is a secret key.
ALTER TABLE api_keys
    ADD COLUMN kind text NOT NULL DEFAULT 'secret'
        CHECK (kind IN ('secret', 'publishable')),
    ADD COLUMN site_id text,
    ADD COLUMN origins text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT api_keys_publishable_site
        CHECK ((kind = 'publishable') = (site_id IS NOT NULL));
