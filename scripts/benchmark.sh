#!/usr/bin/env bash
# Benchmark on this machine side by side with MediaPipe's Hands solution: builds MediaPipe's own
# venv (.venv-bench; mediapipe 0.10.14 needs protobuf < 5, onnx needs >= 6) once, then runs
# `hand-pose bench` with it. Arguments go to `hand-pose bench` (e.g. pipeline --accuracy).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"  # sets PY
BENCH="$ROOT/.venv-bench"
if [[ ! -x "$BENCH/bin/python" ]] || ! "$BENCH/bin/python" -c "import mediapipe" 2>/dev/null; then
  python3 -m venv "$BENCH"
  "$BENCH/bin/pip" install -q --disable-pip-version-check mediapipe==0.10.14
fi
cd "$ROOT"
exec "$PY" -m hand_pose_core.cli bench --mediapipe-python "$BENCH/bin/python" "$@"
