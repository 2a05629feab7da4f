-- A whole batch in one statement: one array per column, one element per
-- record. Array columns travel as comma-joined text (names cannot hold ',').
-- The column lists are filled in where marked, from the one list in
-- store/consent_row.rs, in the order of its parameters.
-- A request id taken meanwhile fails the statement (and the batch): the
-- batch's signed trees must hold only records it stores, so the writer
-- leaves out ids stored before it seals, merges repeats within the batch,
-- and begins again when a concurrent batch took an id first.
INSERT INTO consent_records (/* columns */)
SELECT /* values */
FROM unnest(/* arrays */) AS r (/* columns */)
