#!/usr/bin/env bash
# Benchmark the tracker on this machine's CPU, side by side with the MediaPipe Hands solution.
# MediaPipe lives in its own venv (.venv-bench): it needs protobuf < 5, onnx needs >= 6.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
BENCH="$ROOT/.venv-bench"
if [[ ! -x "$BENCH/bin/python" ]] || ! "$BENCH/bin/python" -c "import mediapipe" 2>/dev/null; then
  python3 -m venv "$BENCH"
  "$BENCH/bin/pip" install -q --disable-pip-version-check mediapipe==0.10.14
fi
cd "$ROOT"
exec "$PY" scripts/benchmark_tracker.py --mediapipe-python "$BENCH/bin/python" "$@"
