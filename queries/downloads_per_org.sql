-- Downloads per package and network organisation (cloud providers and companies the ASN table
-- names; "other" for networks it does not name, such as most ISPs). Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT package_id, coalesce(org, 'other') AS org, count(*) AS downloads
FROM e
WHERE download AND NOT bot
GROUP BY 1, 2
ORDER BY package_id, downloads DESC, org
