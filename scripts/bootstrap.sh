#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) and install everything the demo and
# the tests need, on a fresh Debian 12 / Python 3.11 machine with nothing pre-installed.
# Re-running is cheap: a stamp file records what was installed and is compared on each run.
# Usage: source scripts/bootstrap.sh   (sets VENV and PY)   or   bash scripts/bootstrap.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HAND_POSE_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

# torch and torchvision must be a matched pair from the registry: the CPU-only torch file that
# some machines carry cannot load the registry's torchvision (operator torchvision::nms missing).
TORCH_SPECS=("torch==2.15.*" "torchvision==0.29.*")
# ROS 2 Jazzy from its PyPI wheels; the [fastrtps] extra is required (Fast DDS is the only RMW).
ROS_SPECS=("ros-jazzy-rclpy[fastrtps]" ros-jazzy-std-msgs ros-jazzy-sensor-msgs ros-jazzy-geometry-msgs
           ros-jazzy-visualization-msgs ros-jazzy-diagnostic-msgs ros-jazzy-shape-msgs
           ros-jazzy-builtin-interfaces ros-jazzy-rcl-lifecycle)

stamp_inputs() {
  printf '%s\n' "${TORCH_SPECS[@]}" "${ROS_SPECS[@]}"
  cat "$ROOT/setup.py"
}
STAMP="$VENV/.hand_pose_bootstrap"
want="$(stamp_inputs | sha256sum | cut -d' ' -f1)"

if [[ ! -x "$PY" ]]; then
  echo "[bootstrap] creating virtual environment in $VENV"
  python3 -m venv "$VENV"
fi
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  echo "[bootstrap] installing torch + torchvision, ROS 2 Jazzy wheels and hand_pose_ros (a few minutes the first time)"
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
  "$PY" -m pip install -q --disable-pip-version-check "${TORCH_SPECS[@]}"
  "$PY" -m pip install -q --disable-pip-version-check "${ROS_SPECS[@]}"
  "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT[test,train]"
  echo "$want" > "$STAMP"
else
  echo "[bootstrap] reusing $VENV"
fi
export VENV PY
