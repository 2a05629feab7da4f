-- The time a list page may not reach. A writer labels its transaction (see
-- mark_writer.sql) before its INSERT takes statement_timestamp() as the
-- record time, so every record still uncommitted has a record time at or
-- after the start of a labelled transaction, or after this statement began.
-- Reading this before the page's own snapshot means every record older than
-- the watermark is committed and visible to the page: a poller never passes a
-- record that commits later. Needs every replica to connect as the same role
-- (or a role with pg_read_all_stats) so their transactions are visible here.
SELECT least(
    statement_timestamp(),
    (SELECT min(xact_start) FROM pg_stat_activity
     WHERE application_name = 'consentd-writer' AND datname = current_database())
) AS watermark
