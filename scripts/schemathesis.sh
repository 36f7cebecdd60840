#!/usr/bin/env bash
# Fuzzes the management API from its own OpenAPI document with schemathesis
# (PyPI) against the release binary, and fails on any failure it reports.
# Called by scripts/test.sh after the release build; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "==> installing schemathesis $SCHEMATHESIS_VERSION (PyPI)" >&2
  # --clear: a venv whose target/ was moved keeps scripts naming the old
  # path and cannot run; start it afresh.
  python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

BIN=target/release/keygate
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DB="sqlite:$WORK/keygate.db"
export KEYGATE_KEY_FILE="$WORK/keygate.key"
BASE="http://127.0.0.1:$PORT"
cleanup() { [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" migrate --database-url "$DB" >/dev/null
# A few applications for the fuzzer to find, change and delete.
for n in 1 2 3; do
  "$BIN" app create --name "decoy-$n" --scope applications:read --database-url "$DB" --json >/dev/null
done
ALL="applications:read applications:write tokens:read tokens:write audit:read scopes:read scopes:write webhooks:read webhooks:write"
# The fuzzer's application also holds `introspect`, which its token does
# not carry: the scope ceiling then forbids the token to change, re-key,
# disable or delete its own application (or revoke its own token), which
# the stateful phase would otherwise find through the list and do, leaving
# every later operation with 401 only.
# shellcheck disable=SC2086
CREDS=$("$BIN" app create --name schemathesis $(printf -- '--scope %s ' $ALL introspect) \
  --rate-per-second 100000 --rate-per-hour 100000000 --database-url "$DB" --json)
# The fuzzer's own application moves out of the range of ids it tries, so
# it does not delete, disable or re-key itself halfway through the run.
python3 - "$WORK/keygate.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
old = db.execute("SELECT id FROM applications WHERE name = 'schemathesis'").fetchone()[0]
db.execute("UPDATE applications SET id = 987654321 WHERE id = ?", (old,))
db.execute("UPDATE client_secrets SET application_id = 987654321 WHERE application_id = ?", (old,))
db.commit()
PY
CLIENT_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$CREDS")
SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$CREDS")

KEYGATE_LOG=warn "$BIN" serve --addr "127.0.0.1:$PORT" --database-url "$DB" >"$WORK/out.log" 2>"$WORK/err.log" &
PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
TOKEN=$(curl -fsS -u "$CLIENT_ID:$SECRET" -d grant_type=client_credentials --data-urlencode "scope=$ALL" "$BASE/oauth2/token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# Its token too, so DELETE /api/v1/tokens/{id} does not revoke it.
python3 - "$WORK/keygate.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
db.execute("UPDATE tokens SET id = 987654321 WHERE application_id = 987654321")
db.commit()
PY

# One worker: CPython 3.11's ast module is not thread-safe (gh-106905), and
# hypothesis parses source to describe filters, so two workers can crash the
# tool itself ("AST constructor recursion depth mismatch").
# positive_data_acceptance is left out: the schema cannot say that scope
# names must exist in the catalogue or that names are unique, so valid-looking
# data is rightly refused with 400.
"$VENV/bin/st" run "$BASE/api/v1/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" --seed 8 \
  --generation-database none --no-color --workers 1
echo "==> schemathesis: no failures"
