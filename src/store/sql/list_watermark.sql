-- Read before the page's own snapshot (see consentd_write_watermark).
SELECT consentd_write_watermark() AS watermark
