#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: `start` installs Debian's
# postgresql when it is missing, creates a data directory under
# target/pg-test owned by the postgres user (initdb refuses root), starts
# the server on a free port with its socket in that directory, and prints
# the URL tests take from KEYGATE_TEST_POSTGRES_URL (each test creates a
# database of its own there). `stop` stops it and removes the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/target/pg-test"

find_bin() {
  local b
  for b in /usr/lib/postgresql/*/bin; do [[ -x "$b/pg_ctl" ]] && { echo "$b"; return; }; done
  return 1
}

case "${1:-}" in
  start)
    if ! bin=$(find_bin); then
      echo "==> installing Debian's postgresql" >&2
      sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
      $sudo apt-get update -qq
      $sudo apt-get install -y -qq postgresql-15 >/dev/null || $sudo apt-get install -y -qq postgresql >/dev/null \
        || { $sudo apt-get install -y -f -qq && $sudo apt-get install -y -qq postgresql >/dev/null; }
      bin=$(find_bin)
    fi
    "$0" stop >/dev/null 2>&1 || true
    mkdir -p "$dir"
    run=()
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres "$dir"
      run=(runuser -u postgres --)
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    # fsync stays on: the crash tests rely on what PostgreSQL acknowledges.
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port" >"$dir/url"
    cat "$dir/url"
    ;;
  stop)
    if [[ -d "$dir/data" ]] && bin=$(find_bin); then
      run=(); [[ $(id -u) -eq 0 ]] && run=(runuser -u postgres --)
      "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
