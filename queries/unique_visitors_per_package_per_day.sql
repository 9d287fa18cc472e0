-- Unique visitors and downloads per package and UTC day. A visitor is a network (IPv4 address or
-- IPv6 /64) with one User-Agent, counted once per package and day: visitor ids change every day,
-- so visitors cannot be added up across days. Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT dt AS day, package_id, count(DISTINCT visitor_id) AS unique_visitors, count(*) AS downloads
FROM e
WHERE download AND NOT bot
GROUP BY dt, package_id
ORDER BY day, unique_visitors DESC, package_id
