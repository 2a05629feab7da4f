-- The sequencer's transaction: named apart from the calls' connections in
-- pg_stat_activity, and never queued behind a lock for long (a lock queue
-- holds everyone behind it, and the next run catches up anyway).
SELECT set_config('application_name', 'consentd-sequencer', true),
       set_config('lock_timeout', '1s', true),
       set_config('statement_timeout', '60s', true)
