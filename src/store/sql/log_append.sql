-- The leaves of one sequencer batch, every tenant's, records' and
-- preference events' (kind $5). One erased since the batch was read gets a
-- tombstone at once; an erasure still running waits for this batch
-- (log_erasure_turn.sql) and marks its leaf after.
-- OFFSET 0 keeps each check one primary-key probe per leaf: without it the
-- planner, knowing the batch's size, hashes every key of the table
-- instead, a scan of the whole index per batch that grows with the table.
INSERT INTO log_leaves (tenant_id, leaf_index, leaf_hash, record_id, leaf_kind, erased)
SELECT l.tenant_id, l.leaf_index, l.leaf_hash, l.record_id, l.leaf_kind,
       CASE l.leaf_kind
           WHEN 1 THEN NOT EXISTS (SELECT 1 FROM consent_records c
                                   WHERE c.tenant_id = l.tenant_id AND c.record_id = l.record_id
                                   OFFSET 0)
           ELSE NOT EXISTS (SELECT 1 FROM preference_events e
                            WHERE e.tenant_id = l.tenant_id AND e.event_id = l.record_id
                            OFFSET 0)
       END
FROM unnest($1::uuid[], $2::bigint[], $3::bytea[], $4::uuid[], $5::smallint[])
    AS l (tenant_id, leaf_index, leaf_hash, record_id, leaf_kind)
