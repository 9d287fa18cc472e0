-- What the other queries leave out: requests from crawlers, mirrors, registry caches, dependency
-- bots, scanners and monitors, per client, with how many would have counted as downloads.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT coalesce(client_name, 'unknown') AS client, count(*) AS requests, count(CASE WHEN download THEN 1 END) AS downloads
FROM e
WHERE bot
GROUP BY 1
ORDER BY requests DESC, client
