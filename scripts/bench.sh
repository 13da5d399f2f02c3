#!/usr/bin/env bash
# Engine benchmark: compute seconds per audio second and peak RSS of the whole pipeline
# (decode + diarize) on long synthetic meetings, for each inference back-end.
#
#   scripts/bench.sh            # 60-minute meeting, tract and (if available) ONNX Runtime
#   scripts/bench.sh --long     # also the 4-hour meeting (memory check)
#
# Meetings are generated once into bench-data/ (git-ignored) with scripts/synth_meeting.py, which
# needs espeak-ng, sox and numpy (installed here if missing). Each file runs in its own process so
# that the peak RSS printed is that file's own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

long=0
[[ "${1:-}" == "--long" ]] && long=1

need_synth() {
  command -v espeak-ng >/dev/null && command -v sox >/dev/null && python3 -c 'import numpy' 2>/dev/null && return
  apt-get update -qq >&2 && apt-get install -y -qq espeak-ng sox >&2
  python3 -m pip install --quiet numpy >&2
}

meeting() { # name minutes speakers
  local name=$1 minutes=$2 speakers=$3
  if [[ ! -f bench-data/$name.wav ]]; then
    need_synth
    python3 scripts/synth_meeting.py --out bench-data --name "$name" --speakers "$speakers" \
      --minutes "$minutes" --overlap 0.1 --snr 20 --noise pink --seed 7 --jobs 2 --quiet >&2
  fi
  echo "bench-data/$name.wav"
}

files=("$(meeting meeting-60min 60 4)")
[[ $long == 1 ]] && files+=("$(meeting meeting-240min 240 6)")

cargo build --release -q -p noteflow-cli
backends=(tract)
if scripts/fetch-onnxruntime.sh >/dev/null 2>&1; then
  cargo build --release -q -p noteflow-cli --features onnxruntime --target-dir target/ort
  backends+=(onnxruntime)
fi

echo "# $(date -u +%F) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for backend in "${backends[@]}"; do
  bin=target/release/noteflow
  [[ $backend == onnxruntime ]] && bin=target/ort/release/noteflow
  for f in "${files[@]}"; do
    ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.onnxruntime/libonnxruntime.so}" \
      "$bin" bench --backend "$backend" "$f"
  done
done
