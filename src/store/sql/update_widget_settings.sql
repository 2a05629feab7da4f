INSERT INTO preference_widgets (tenant_id, widget_id, selection_lifetime_micros) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, widget_id) DO UPDATE SET
    selection_lifetime_micros = EXCLUDED.selection_lifetime_micros,
    update_time = now()
