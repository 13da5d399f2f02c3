#!/usr/bin/env bash
# Runs every test of the workspace, with both inference back-ends.
# Installs what the tests need first: the ONNX Runtime library for the `onnxruntime` back-end
# (from the PyPI wheel, into .onnxruntime/). Nothing else is needed beyond cargo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-onnxruntime.sh >/dev/null
export ORT_DYLIB_PATH="$PWD/.onnxruntime/libonnxruntime.so"
cargo test --workspace --all-features "$@"
