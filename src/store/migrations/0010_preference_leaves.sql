-- Preference events join consent records in each tenant's log (0009): a
-- leaf is SHA-256(0x00 || log_salt || claims) of the event's canonical
-- claims (see domain/preference/claims.rs). Events are written by SQL too
-- (expiry), so the salt is the column's default. A volatile default is
-- evaluated per row when the column is added: every stored event gets a
-- salt of its own now.
ALTER TABLE preference_events ADD COLUMN log_salt bytea NOT NULL
    DEFAULT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')
    CHECK (length(log_salt) = 32);

-- The sequencer reads committed events in this order, below the write
-- watermark, as it reads records.
CREATE INDEX preference_events_log_order ON preference_events (event_time, event_id);

-- What a leaf stands for: 1 a consent record, 2 a preference event (see
-- store/stored.rs). record_id names the one or the other; every leaf
-- before this migration is a record's.
ALTER TABLE log_leaves ADD COLUMN leaf_kind smallint NOT NULL DEFAULT 1
    CHECK (leaf_kind IN (1, 2));
DROP INDEX log_leaves_record;
CREATE UNIQUE INDEX log_leaves_entry ON log_leaves (tenant_id, record_id, leaf_kind);

-- Where the sequencer has got to in the events, in (event_time, event_id)
-- order: from the start, so the events stored before this are logged too.
ALTER TABLE consentd_meta.log_sequencer
    ADD COLUMN event_time timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00',
    ADD COLUMN event_id   uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';

-- A leaf's tenant is its log head's, which holds the foreign key to tenants
-- and is written in the same transaction; checking it again for every leaf
-- was the largest single share of the sequencer's INSERT (see
-- docs/performance.md, "The log's sequencer").
ALTER TABLE log_leaves DROP CONSTRAINT log_leaves_tenant_id_fkey;
