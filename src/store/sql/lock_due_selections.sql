-- Waits for any expiry worker holding one of this user's due selections, so
-- the SKIP LOCKED expiry that follows skips none of them.
SELECT 1 FROM preference_selections
WHERE tenant_id = $1 AND widget_id = $2 AND user_id = $3 AND expire_time <= $4
FOR UPDATE
