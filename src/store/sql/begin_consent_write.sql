-- Labels the writer first, then takes the record time, with the site's
-- settings, in one round trip.
SELECT consentd_mark_writer() AS label, statement_timestamp() AS now, s.*
FROM consentd_site_settings($1, $2, $3, $4) AS s
