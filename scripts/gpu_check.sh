#!/usr/bin/env bash
# One command for a GPU machine: the GPU tests (every GPU backend against the CPU reference:
# 2D within 0.5 px, 3D within 1 mm; the H100-class speed targets), then
# `hand-pose bench --device cuda`; both write their results into docs/benchmarks.md. Then the
# training steps/s of every network on the GPU (scripts/bench_training_networks.py) into
# docs/training.md.
# Uses $PY, else .venv/bin/python, else python3. Exit code: the GPU tests' (2: no CUDA GPU).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-}"
[[ -z "$PY" && -x "$ROOT/.venv/bin/python" ]] && PY="$ROOT/.venv/bin/python"
PY="${PY:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
DOC="${HAND_POSE_BENCH_DOC:-$ROOT/docs/benchmarks.md}"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch sees no CUDA GPU here; nothing to check" >&2
  exit 2
fi
GPU="$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")"
REPORT="$(mktemp)"
LOG="$(mktemp)"
HAND_POSE_GPU_REPORT="$REPORT" "$PY" -m pytest -p no:cacheprovider -q -rs -m "gpu or not gpu" \
  tests/test_gpu.py tests/test_torch_preprocess.py 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
{
  echo
  echo "## GPU check $(date -u '+%Y-%m-%d %H:%M UTC'): $GPU"
  echo
  echo "Command: \`bash scripts/gpu_check.sh\` (tests/test_gpu.py, tests/test_torch_preprocess.py); pytest exit code $rc."
  echo "torch $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'), tensorrt $("$PY" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || echo 'not installed')."
  echo
  echo '```'
  cat "$REPORT"
  grep -E "^(FAILED|SKIPPED|ERROR)|[0-9]+ (passed|failed)" "$LOG"
  echo '```'
} >> "$DOC"
"$PY" -m hand_pose_core.cli bench --device cuda --batch 1,8,32,256 --output "$DOC" --title "GPU check, $GPU" \
  || echo "gpu_check: hand-pose bench --device cuda failed" >&2
TDOC="${HAND_POSE_TRAINING_DOC:-$ROOT/docs/training.md}"
{
  echo
  echo "### GPU training speed $(date -u '+%Y-%m-%d %H:%M UTC'): $GPU"
  echo
  echo "Command: \`python scripts/bench_training_networks.py --device cuda --steps 10\` (from scripts/gpu_check.sh)."
  echo
  echo '```'
  "$PY" scripts/bench_training_networks.py --device cuda --steps 10 2>&1 \
    || echo "gpu_check: bench_training_networks --device cuda failed"
  echo '```'
} >> "$TDOC"
rm -f "$REPORT" "$LOG"
echo "gpu_check: results appended to $DOC and $TDOC"
exit "$rc"
