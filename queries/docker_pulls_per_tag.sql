-- Docker pulls per image and tag: successful manifest requests by tag (GET or HEAD). Every pull by
-- tag starts with exactly one, whatever the client (Docker Engine resolves the tag with a HEAD and
-- then fetches by digest; podman and skopeo GET the tag). Pulls by digest are not attributed to a
-- tag. Bots and mirrors excluded.
-- Parameters: first day, last day (YYYY-MM-DD, inclusive).
WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)
SELECT image, reference AS tag, count(*) AS pulls, count(DISTINCT visitor_id) AS unique_visitors
FROM e
WHERE kind = 'docker' AND NOT bot AND method IN ('GET', 'HEAD') AND status BETWEEN 200 AND 399
  AND path LIKE '%/manifests/%' AND reference NOT LIKE 'sha256:%'
GROUP BY image, reference
ORDER BY pulls DESC, image, tag
