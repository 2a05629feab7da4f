-- Batch receipts (cr2): one signature covers the Merkle tree of a batch;
-- each row keeps its leaf index, the tree size and its audit path. NULL for
-- records signed alone (cr1).
ALTER TABLE consent_records ADD COLUMN receipt_proof bytea;
