-- Downloads per package and version (Python and npm files, file rules with a {version} variable).
-- Docker images have tags instead: see docker_pulls_per_tag. Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT package_id, version, count(*) AS downloads
FROM e
WHERE download AND NOT bot AND version IS NOT NULL
GROUP BY package_id, version
ORDER BY package_id, downloads DESC, version
