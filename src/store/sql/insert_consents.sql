-- A whole batch in one statement: one array per column, one element per
-- record. Array columns travel as comma-joined text (names cannot hold ',').
-- The column lists are filled in where marked, from the one list in
-- store/consent_row.rs, in the order of its parameters.
-- A request id taken earlier inserts nothing (the writer merges repeats
-- within a batch before this runs);
-- only the ids of the rows inserted come back.
INSERT INTO consent_records (/* columns */)
SELECT /* values */
FROM unnest(/* arrays */) AS r (/* columns */)
ON CONFLICT (tenant_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
RETURNING record_id
