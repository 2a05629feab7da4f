-- Removes up to $2 selections due at $1 and writes an EXPIRED event ($3) by
-- the system ($4) for each,
-- in one statement. SKIP LOCKED lets several workers run at once: each due
-- selection is taken by exactly one of them. $5, $6, $7 narrow it to one
-- tenant, widget and user (an update expires its user's due selections
-- first); NULL means all.
WITH due AS (
    SELECT tenant_id, widget_id, user_id, topic_id, option_id
    FROM preference_selections
    WHERE expire_time <= $1
      AND ($5::uuid IS NULL OR tenant_id = $5)
      AND ($6::text IS NULL OR widget_id = $6)
      AND ($7::text IS NULL OR user_id = $7)
    ORDER BY expire_time
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), expired AS (
    DELETE FROM preference_selections s
    USING due
    WHERE (s.tenant_id, s.widget_id, s.user_id, s.topic_id, s.option_id)
        = (due.tenant_id, due.widget_id, due.user_id, due.topic_id, due.option_id)
    RETURNING s.*
), written AS (
    INSERT INTO preference_events (
        tenant_id, event_id, widget_id, user_id, topic_id, change_type, author_type, author_key_id,
        language_code, topic_title_en, topic_title_translated,
        option_ids, option_titles_en, option_titles_translated, event_time
    )
    SELECT tenant_id, consentd_uuid_v7(), widget_id, user_id, topic_id, $3::smallint, $4::smallint, NULL,
           language_code, topic_title_en, topic_title_translated,
           ARRAY[option_id], ARRAY[option_title_en], ARRAY[option_title_translated], statement_timestamp()
    FROM expired
    RETURNING 1
)
SELECT count(*) AS expired FROM written
