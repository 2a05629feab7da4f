SELECT consentd_mark_writer()
