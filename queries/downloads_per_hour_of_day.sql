-- Downloads per hour of the day (UTC): when do people and CI systems install? Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT hour(from_iso8601_timestamp("time")) AS hour_utc, count(*) AS downloads
FROM e
WHERE download AND NOT bot
GROUP BY 1
ORDER BY hour_utc
