-- The leaves of records or events (kind $3) erased through consentd: a
-- tombstone, not a deletion behind its back. Run after
-- log_erasure_turn.sql, as a statement of its own, so it sees every leaf
-- committed while that one waited.
UPDATE log_leaves SET erased = true
WHERE tenant_id = $1 AND record_id = ANY($2) AND leaf_kind = $3
