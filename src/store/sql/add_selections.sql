-- Only options not selected yet come back: those are the ones added. Their
-- lifetime: the request's ($8), else the widget's setting, else none.
INSERT INTO preference_selections (
    tenant_id, widget_id, user_id, topic_id, option_id,
    topic_title_en, topic_title_translated, option_title_en, option_title_translated,
    language_code, add_time, expire_time
)
SELECT $1, $2, $3, $4, o.option_id, $5, $6, o.title_en, o.title_translated, $7,
       statement_timestamp(),
       statement_timestamp() + coalesce(
           $8::bigint,
           (SELECT w.selection_lifetime_micros FROM preference_widgets w
            WHERE w.tenant_id = $1 AND w.widget_id = $2)
       ) * interval '1 microsecond'
FROM unnest($9::text[], $10::text[], $11::text[]) AS o (option_id, title_en, title_translated)
ON CONFLICT DO NOTHING
RETURNING option_id
