#!/usr/bin/env bash
# Installs the ONNX Runtime shared library for the optional `onnxruntime` back-end of
# noteflow-diarize into <repo>/.onnxruntime/ and prints the ORT_DYLIB_PATH line to use it.
#
# Why this way: the `ort` crate is built with `load-dynamic` (its own binary download cannot reach
# anything here), so the library is taken from the official PyPI `onnxruntime` wheel, the only
# registry that ships it. The version is pinned to the ONNX Runtime API that `ort` 2.0.0-rc.10 was
# generated against (API 22 = ONNX Runtime 1.22): an older library makes `ort` refuse to load, a
# newer one is untested. The wheel is checked against its sha256 so that a different build never
# slips in silently.
#
# Idempotent: re-running with the library already in place only refreshes the symlink.
# Needs python3 with pip; works on Linux x86_64 and aarch64.
set -euo pipefail

ORT_VERSION="1.22.1"
# Wheels for CPython 3.11; the shared library inside does not depend on the Python version, pinning
# one tag only makes the hash below well defined whatever python3 runs this script.
PY_VERSION="3.11"
declare -A WHEEL_SHA256=(
  [x86_64]="f6effa1299ac549a05c784d50292e3378dbbf010346ded67400193b09ddc2f04"
  [aarch64]="7ae7526cf10f93454beb0f751e78e5cb7619e3b92f9fc3bd51aa6f3b7a8977e5"
)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo_root/.onnxruntime"
lib_name="libonnxruntime.so.$ORT_VERSION"
lib="$dest/$lib_name"
link="$dest/libonnxruntime.so"

if [[ "$(uname -s)" != "Linux" ]]; then
  echo "error: this script installs the Linux library only; elsewhere install ONNX Runtime $ORT_VERSION yourself and set ORT_DYLIB_PATH" >&2
  exit 1
fi
arch="$(uname -m)"
expected_sha="${WHEEL_SHA256[$arch]:-}"
if [[ -z "$expected_sha" ]]; then
  echo "error: no pinned onnxruntime $ORT_VERSION wheel for architecture $arch" >&2
  exit 1
fi

if [[ ! -f "$lib" ]]; then
  command -v python3 >/dev/null || { echo "error: python3 (with pip) is needed to download the wheel" >&2; exit 1; }
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT

  echo "downloading onnxruntime==$ORT_VERSION ($arch) from PyPI..." >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$PY_VERSION" --platform "manylinux_2_27_$arch" \
    --dest "$tmp" "onnxruntime==$ORT_VERSION"

  wheels=("$tmp"/onnxruntime-"$ORT_VERSION"-*.whl)
  if [[ ${#wheels[@]} -ne 1 || ! -f "${wheels[0]}" ]]; then
    echo "error: expected exactly one onnxruntime wheel in $tmp" >&2
    exit 1
  fi
  wheel="${wheels[0]}"
  actual_sha="$(sha256sum "$wheel" | cut -d' ' -f1)"
  if [[ "$actual_sha" != "$expected_sha" ]]; then
    echo "error: $(basename "$wheel") has sha256 $actual_sha, expected $expected_sha" >&2
    exit 1
  fi

  mkdir -p "$dest"
  # Extract next to the target and rename last, so that an interrupted run never leaves a
  # half-written library behind. Python's zipfile: python3 is needed for pip anyway, unzip may not be.
  partial="$dest/.$lib_name.partial"
  python3 - "$wheel" "$partial" "onnxruntime/capi/$lib_name" <<'PY'
import shutil, sys, zipfile
wheel, out, member = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$partial"
  mv -f "$partial" "$lib"
fi

ln -sfn "$lib_name" "$link"
echo "ONNX Runtime $ORT_VERSION installed in $dest" >&2
echo "export ORT_DYLIB_PATH=$link"
