-- The leaves of records erased through consentd: a tombstone, not a
-- deletion behind its back. Its own statement, after the DELETE, so it
-- sees leaves the sequencer committed while the DELETE waited.
UPDATE log_leaves SET erased = true
WHERE tenant_id = $1 AND record_id = ANY($2)
