UPDATE consentd_meta.log_sequencer SET event_time = $1, event_id = $2
