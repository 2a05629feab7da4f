UPDATE consentd_meta.log_sequencer SET record_time = $1, record_id = $2
