-- Downloads per package and client (docker, containerd, pip, uv, npm, curl, a browser, ...).
-- The client is parsed from the User-Agent; "unknown" when it names none. Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT package_id, coalesce(client_name, 'unknown') AS client, count(*) AS downloads
FROM e
WHERE download AND NOT bot
GROUP BY 1, 2
ORDER BY package_id, downloads DESC, client
