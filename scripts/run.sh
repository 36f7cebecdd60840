#!/usr/bin/env bash
# Builds Keygate (release, wasm optimised) and runs it on SQLite under ./data/.
# Extra arguments go to `keygate serve`, e.g. scripts/run.sh --addr 0.0.0.0:3000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh
cargo leptos build --release --precompress
export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-target/site}"
exec target/release/keygate serve "$@"
