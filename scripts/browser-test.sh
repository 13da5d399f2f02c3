#!/usr/bin/env bash
# Browser tests of `noteflow console`: Debian's Chromium driven by playwright-core (both installed
# here when missing), against real `noteflow serve` and `noteflow console` processes. Screenshots of
# the main views go to target/console-screenshots/. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian's chromium for the browser tests" >&2
  $sudo apt-get install -y chromium >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y chromium >/dev/null; }
fi
if [ ! -d crates/noteflow-cli/tests/browser/node_modules/playwright-core ]; then
  (cd crates/noteflow-cli/tests/browser && npm ci --no-audit --no-fund >/dev/null)
fi
# The same debug binary the Rust tests run.
cargo build -p noteflow-cli --quiet
NOTEFLOW_BIN="$PWD/target/debug/noteflow" \
  node --test --test-concurrency=1 --test-reporter=tap crates/noteflow-cli/tests/browser/console.test.mjs
