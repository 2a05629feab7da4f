SELECT * FROM consentd_site_settings($1, $2, $3, $4)
