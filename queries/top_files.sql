-- The 100 most downloaded files (file, Python, npm and catch-all downloads, by domain and path).
-- Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT domain, path, package_id, count(*) AS downloads, count(DISTINCT visitor_id) AS unique_visitors
FROM e
WHERE download AND NOT bot AND kind <> 'docker'
GROUP BY domain, path, package_id
ORDER BY downloads DESC, domain, path, package_id
LIMIT 100
