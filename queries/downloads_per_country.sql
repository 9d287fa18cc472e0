-- Downloads per package and viewer country (ISO 3166-1 alpha-2, from CloudFront; "unknown" locally).
-- Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT package_id, coalesce(country, 'unknown') AS country, count(*) AS downloads
FROM e
WHERE download AND NOT bot
GROUP BY 1, 2
ORDER BY package_id, downloads DESC, country
