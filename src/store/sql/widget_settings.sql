SELECT selection_lifetime_micros FROM preference_widgets WHERE tenant_id = $1 AND widget_id = $2
