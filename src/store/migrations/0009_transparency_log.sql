-- Each tenant's append-only log (RFC 9162): one leaf per stored consent
-- record, in the order one sequencer at a time gives them after commit.
-- A leaf is SHA-256(0x00 || log_salt || claims) (see domain/tlog.rs): the
-- random salt lives in the record's row, so an erasure takes it along and
-- the leaf that stays (a tombstone) cannot be matched by hashing guesses.
ALTER TABLE consent_records ADD COLUMN log_salt bytea
    CHECK (log_salt IS NULL OR length(log_salt) = 32);
-- Records stored before the log get their salt now.
UPDATE consent_records
SET log_salt = decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');

-- The sequencer reads committed records in this order, below the write
-- watermark, as pollers do.
CREATE INDEX consent_records_log_order ON consent_records (record_time, record_id);

CREATE TABLE log_leaves (
    tenant_id  uuid        NOT NULL REFERENCES tenants,
    leaf_index bigint      NOT NULL CHECK (leaf_index >= 0),
    leaf_hash  bytea       NOT NULL CHECK (length(leaf_hash) = 32),
    record_id  uuid        NOT NULL,
    -- Set by erasure and retention through consentd: a leaf whose record is
    -- gone without this was deleted behind consentd's back.
    erased     boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, leaf_index)
);
CREATE UNIQUE INDEX log_leaves_record ON log_leaves (tenant_id, record_id);

-- A tenant's log head: its size, and the roots of the perfect subtrees
-- that make it up (largest first, 32 bytes each), from which the next
-- leaves and the root follow without reading every leaf.
CREATE TABLE log_heads (
    tenant_id       uuid        PRIMARY KEY REFERENCES tenants,
    tree_size       bigint      NOT NULL,
    frontier        bytea       NOT NULL,
    checkpoint_size bigint      NOT NULL DEFAULT 0,
    checkpoint_time timestamptz
);

-- Signed checkpoints (C2SP tlog-checkpoint notes), one per size.
CREATE TABLE log_checkpoints (
    tenant_id   uuid        NOT NULL REFERENCES tenants,
    tree_size   bigint      NOT NULL,
    root_hash   bytea       NOT NULL CHECK (length(root_hash) = 32),
    note        text        NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, tree_size)
);

-- Where the sequencer has got to in (record_time, record_id) order: the
-- servers' own bookkeeping, of no tenant, so beside the migrations'.
CREATE TABLE consentd_meta.log_sequencer (
    single      boolean     PRIMARY KEY DEFAULT true CHECK (single),
    record_time timestamptz NOT NULL,
    record_id   uuid        NOT NULL
);
INSERT INTO consentd_meta.log_sequencer VALUES (true, '1970-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000');
