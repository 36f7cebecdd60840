#!/usr/bin/env bash
# Builds the release binary and runs the benchmark (bench/run.py): wrk
# against a fresh SQLite database, then with 1,000,000 tokens seeded, then
# on PostgreSQL with one and with two instances.
# BENCH_DURATION (default 10s) and BENCH_CONNECTIONS (default 32) tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh
if ! command -v wrk >/dev/null 2>&1 || ! command -v brotli >/dev/null 2>&1; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk brotli
fi
cargo leptos build --release --precompress
# PostgreSQL runs: one instance, then two on one database, on a throwaway
# server (the same one the tests use).
BENCH_POSTGRES_URL=$(scripts/pg-test-server.sh start)
export BENCH_POSTGRES_URL
trap 'scripts/pg-test-server.sh stop' EXIT
python3 bench/run.py
