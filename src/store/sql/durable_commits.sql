-- Run on every new connection. With synchronous_commit = off, PostgreSQL
-- answers COMMIT before the commit's WAL is written, and a crash loses
-- transactions whose callers were told they were stored. 'local' waits for
-- the local WAL write only; any other setting already waits at least that
-- long (and for standbys as configured), so it is kept.
SELECT set_config('synchronous_commit', 'local', false)
WHERE current_setting('synchronous_commit') = 'off'
