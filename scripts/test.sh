#!/usr/bin/env bash
# Runs every test of the workspace, with both inference back-ends, and ends with one summary line.
# Installs what the tests need first: the ONNX Runtime library for the `onnxruntime` back-end
# (from the PyPI wheel, into .onnxruntime/), and for the console's browser tests Debian's Chromium
# and playwright-core (scripts/browser-test.sh). Nothing else is needed beyond cargo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-onnxruntime.sh >/dev/null
export ORT_DYLIB_PATH="$PWD/.onnxruntime/libonnxruntime.so"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-features "$@" 2>&1 | tee "$log" || status=$?
scripts/browser-test.sh 2>&1 | tee -a "$log" || status=$?
# cargo prints one "test result" line per test binary (the last is often the empty doc-test run);
# add them up, with the browser tests' TAP totals, so the closing line tells the whole story.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     /^# pass [0-9]+$/ { p += $3 } /^# fail [0-9]+$/ { f += $3 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
