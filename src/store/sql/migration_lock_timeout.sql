-- SET LOCAL lock_timeout, as a statement that can be prepared.
SELECT set_config('lock_timeout', '5s', true)
