INSERT INTO preference_events (
    tenant_id, event_id, widget_id, user_id, topic_id, change_type, author_type, author_key_id,
    language_code, topic_title_en, topic_title_translated,
    option_ids, option_titles_en, option_titles_translated, event_time
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, statement_timestamp())
RETURNING *
