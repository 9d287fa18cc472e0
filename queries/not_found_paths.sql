-- The 100 most requested paths that matched no rule on a known domain: mistyped install commands,
-- stale links, versions that were never published. Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT domain, path, count(*) AS requests, count(DISTINCT visitor_id) AS unique_visitors
FROM e
WHERE action = 'not-found' AND NOT bot
GROUP BY domain, path
ORDER BY requests DESC, domain, path
LIMIT 100
