SELECT record_time, record_id FROM log_sequencer
