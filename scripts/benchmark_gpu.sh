#!/usr/bin/env bash
# GPU benchmark of the GPU default config (scripts/benchmark_gpu.py says what it measures). Meant to
# finish in under 8 minutes on an H100/H200: 30 s of training steps, a 3-minute accuracy run on
# dlc-openfield with its scoring, and tracking timings.
#
#   scripts/benchmark_gpu.sh                 # on a machine with an NVIDIA GPU; JSON lines on stdout
#   scripts/benchmark_gpu.sh --out gpu.json  # also keep everything in a file
#   BENCHMARK_TINY=1 scripts/benchmark_gpu.sh   # tiny config on the CPU: checks the script in 1-2 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
if [ "${BENCHMARK_TINY:-0}" = "1" ]; then
  args=(--tiny "${args[@]}")
elif command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2
else
  echo "benchmark_gpu.sh: no nvidia-smi here; set BENCHMARK_TINY=1 to check the script on the CPU" >&2
  exit 2
fi
exec timeout "${BENCHMARK_TIMEOUT:-480}" python scripts/benchmark_gpu.py "${args[@]}"
