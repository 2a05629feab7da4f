SELECT * FROM consentd_site_declaration($1, $2)
