#!/usr/bin/env bash
# Runs every test: unit and HTTP tests (cargo), the API fuzzed from its
# OpenAPI document (schemathesis), then the browser tests (Playwright
# driving Debian's Chromium against the release build).
# Everything is built in the release profile only, so the Rust code is
# compiled once for the tests and the browser run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh --browser
cargo test --release --workspace
cargo leptos build --release
scripts/schemathesis.sh
mkdir -p end2end/screenshots
(cd end2end && npx playwright test)
