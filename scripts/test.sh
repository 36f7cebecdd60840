#!/usr/bin/env bash
# Runs every test: unit and HTTP tests (cargo) on SQLite, the store,
# use-case, HTTP and multi-instance suites again on a throwaway PostgreSQL
# server, the API fuzzed from its OpenAPI document (schemathesis), then the
# browser tests (Playwright driving Debian's Chromium against the release
# build). Everything is built in the release profile only, so the Rust code
# is compiled once for the tests and the browser run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh --browser
# The forward-auth test puts Keygate behind real nginx and Caddy.
export KEYGATE_REQUIRE_PROXIES=1
pg_url=$(scripts/pg-test-server.sh start)
trap 'scripts/pg-test-server.sh stop' EXIT
cargo test --release --workspace
echo "==> the store, use-case, HTTP and multi-instance suites on PostgreSQL ($pg_url)"
KEYGATE_TEST_POSTGRES_URL="$pg_url" cargo test --release --workspace --lib \
  --test api_me --test api_v1 --test oauth_token --test oauth_client_library \
  --test console_auth --test console_pages --test hardening --test parity --test multi_instance \
  --test audiences_jwt_forward_auth --test credential_lifecycle --test activity
cargo leptos build --release --precompress
scripts/schemathesis.sh
mkdir -p end2end/screenshots
(cd end2end && npx playwright test)
