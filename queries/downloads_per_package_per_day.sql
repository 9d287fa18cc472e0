-- Downloads per package and UTC day.
-- Counts events with download = true (docs/EVENTS.md, "What counts"); bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT dt AS day, package_id, count(*) AS downloads
FROM e
WHERE download AND NOT bot
GROUP BY dt, package_id
ORDER BY day, downloads DESC, package_id
