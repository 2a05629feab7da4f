SELECT event_time, event_id FROM consentd_meta.log_sequencer
