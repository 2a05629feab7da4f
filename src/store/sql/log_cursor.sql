SELECT record_time, record_id FROM consentd_meta.log_sequencer
