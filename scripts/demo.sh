#!/usr/bin/env bash
# Set up (or reuse) .venv and run the main job on the built-in defaults: a replay node publishing
# the built-in sample photo as a camera, the hand_pose_node, and a consumer printing 3D joints.
# Extra arguments go to hand_pose_demo (see `hand_pose_demo --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec "$VENV/bin/hand_pose_demo" "$@"
