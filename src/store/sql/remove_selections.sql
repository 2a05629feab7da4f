-- $4 NULL: every topic; $5 NULL: every option of the topic(s).
DELETE FROM preference_selections
WHERE tenant_id = $1 AND widget_id = $2 AND user_id = $3
  AND ($4::text IS NULL OR topic_id = $4)
  AND ($5::text[] IS NULL OR option_id = ANY ($5))
RETURNING topic_id, option_id, topic_title_en, topic_title_translated, option_title_en, option_title_translated
