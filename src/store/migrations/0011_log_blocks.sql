-- The root of every complete aligned block of 2^level leaves of each
-- tenant's log, for the levels domain/merkle/blocks.rs names (every
-- fourth, up to 20): a proof reads about a hundred of these and of single
-- leaves instead of every leaf. A block never changes: erasure keeps leaf
-- hashes.
CREATE TABLE log_blocks (
    tenant_id   uuid     NOT NULL REFERENCES tenants,
    level       smallint NOT NULL CHECK (level > 0),
    block_index bigint   NOT NULL CHECK (block_index >= 0),
    hash        bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, level, block_index)
);

-- Logs sequenced before this migration: their blocks, from their leaves,
-- one tree level at a time (RFC 9162 node hash: SHA-256(0x01 || l || r));
-- only whole pairs join, so only complete blocks come out.
DO $$
BEGIN
    CREATE TEMP TABLE log_level ON COMMIT DROP AS
        SELECT tenant_id, leaf_index AS i, leaf_hash AS h FROM log_leaves;
    FOR level IN 1..20 LOOP
        CREATE TEMP TABLE log_next ON COMMIT DROP AS
            SELECT l.tenant_id, l.i / 2 AS i, sha256('\x01'::bytea || l.h || r.h) AS h
            FROM log_level l
            JOIN log_level r ON r.tenant_id = l.tenant_id AND r.i = l.i + 1
            WHERE l.i % 2 = 0;
        DROP TABLE log_level;
        ALTER TABLE log_next RENAME TO log_level;
        IF level % 4 = 0 THEN
            INSERT INTO log_blocks (tenant_id, level, block_index, hash)
            SELECT tenant_id, level, i, h FROM log_level;
        END IF;
    END LOOP;
    DROP TABLE log_level;
END
$$;
