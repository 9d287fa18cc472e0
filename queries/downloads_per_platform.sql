-- Downloads per operating system and CPU architecture (parsed from the User-Agent; "unknown" when
-- it does not say), and how many of them came from CI. Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT coalesce(os, 'unknown') AS os, coalesce(arch, 'unknown') AS arch, count(*) AS downloads, count(CASE WHEN ci THEN 1 END) AS ci_downloads
FROM e
WHERE download AND NOT bot
GROUP BY 1, 2
ORDER BY downloads DESC, os, arch
