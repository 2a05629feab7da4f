SELECT * FROM preference_selections
WHERE tenant_id = $1 AND widget_id = $2 AND user_id = $3
  AND (expire_time IS NULL OR expire_time > $4)
ORDER BY topic_id, option_id
