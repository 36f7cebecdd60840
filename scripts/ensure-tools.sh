#!/usr/bin/env bash
# Installs what building (and, with --browser, testing) Keygate needs, and
# skips whatever is already present. Safe to run again and again.
set -euo pipefail

want_browser=0
[[ "${1:-}" == "--browser" ]] && want_browser=1

CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen pin in Cargo.toml
BINARYEN_VERSION=132

say() { printf '==> %s\n' "$*" >&2; }
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (compiles for ~15 minutes, once)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if ! command -v wasm-opt >/dev/null 2>&1; then
  say "installing wasm-opt (binaryen $BINARYEN_VERSION from npm)"
  npm install -g "binaryen@$BINARYEN_VERSION"
fi

apt_install() {
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  # apt-get can stop half-way on this kind of machine; a second pass with -f finishes it.
  $sudo apt-get install -y -qq "$@" || { $sudo apt-get install -y -f -qq && $sudo apt-get install -y -qq "$@"; }
}

if [[ $want_browser -eq 1 ]]; then
  # Reverse proxies the forward-auth test runs Keygate behind.
  if ! command -v nginx >/dev/null 2>&1 || ! command -v caddy >/dev/null 2>&1; then
    say "installing Debian's nginx-light and caddy"
    apt_install nginx-light caddy
  fi
  # The snippet test runs the console's Python snippet, which uses requests.
  if ! python3 -c 'import requests' 2>/dev/null; then
    say "installing python3 requests"
    python3 -m pip install -q --user requests || apt_install python3-requests
  fi
  if [[ ! -x /usr/bin/chromium ]]; then
    say "installing Debian's chromium"
    apt_install chromium
  fi
  if [[ ! -d end2end/node_modules/@playwright/test || ! -d end2end/node_modules/@axe-core/playwright ]]; then
    say "installing the end2end npm packages"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
fi
