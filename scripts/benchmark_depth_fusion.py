"""RGB-D fusion accuracy on rendered RGB-D: camera-frame joint error with and without depth.

Hands (the licence-free synthetic MANO-format model, or the official one with --mano-root) are
rendered at 0.3-1.0 m with the project's moderngl/EGL renderer, 0.8-1.25x the average hand size,
in front of a wall; the exact depth is degraded like a structured-light camera (disparity
quantisation, axial noise, projector shadow, edge holes and mixed pixels, dropouts, blobs) and
published as uint16 millimetres (tests/rgbd_render.py).

Two measurements:

A. the fusion stage (hand_pose_core.pipeline.depth_fusion) fed what the RGB pipeline gives: the
   true 2D joints with landmark noise (sigma px) and the network's metric joints, which have an
   average hand size and per-joint noise (sigma mm), placed by metric3d. RGB only vs with depth.
B. the whole estimator (MediaPipe networks, metric placement, optional MANO fit) on the rendered
   images, with and without the depth image. The landmark network was trained on real hands; on
   these synthetic renders its 2D joints are several pixels off, which bounds the result: the
   "2D at true z" column places the detected 2D joints at their true depth (the best any depth
   fusion could do with these 2D joints).

    python scripts/benchmark_depth_fusion.py [--hands 200] [--e2e-hands 60] [--seed 0]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hand_pose_core.camera import project, unproject  # noqa: E402
from hand_pose_core.pipeline.depth_fusion import depth_to_metres, fuse_hand_depth  # noqa: E402
from hand_pose_core.pipeline.metric3d import place_hand_in_camera  # noqa: E402

Z_BINS = ((0.3, 0.5), (0.5, 0.7), (0.7, 1.0))


def _mpjpe_mm(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b, axis=1).mean() * 1e3)


def _row(name, errs_rgb, errs_d, used, extra="") -> str:
    r, d = np.array(errs_rgb), np.array(errs_d)
    return (f"| {name} | {len(r)} | {r.mean():.1f} / {np.median(r):.1f} | **{d.mean():.1f}** / {np.median(d):.1f} | "
            f"{100 * np.mean(used):.0f} % |{extra}")


def stage(scenes, uv_sigma_px: float, rel_sigma_m: float, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    rows, per_bin, times = [], {b: ([], [], []) for b in Z_BINS}, []
    for h in scenes:
        J = h.joints_cam_m
        uv = project(J, h.K) + rng.normal(0.0, uv_sigma_px, (21, 2))
        world = (J - J.mean(0)) / h.scale + rng.normal(0.0, rel_sigma_m, (21, 3))
        P = place_hand_in_camera(uv, world, h.K).joints_cam_m
        depth_m = depth_to_metres(h.depth_mm)
        t0 = time.perf_counter()
        r = fuse_hand_depth(P, uv, depth_m, h.K)
        times.append(time.perf_counter() - t0)
        z = J[9, 2]
        b = next(b for b in Z_BINS if b[0] <= z <= b[1] + 1e-9)
        per_bin[b][0].append(_mpjpe_mm(P, J))
        per_bin[b][1].append(_mpjpe_mm(r.joints_cam_m, J))
        per_bin[b][2].append(r.used)
    all_r = [e for b in Z_BINS for e in per_bin[b][0]]
    all_d = [e for b in Z_BINS for e in per_bin[b][1]]
    all_u = [u for b in Z_BINS for u in per_bin[b][2]]
    for b in Z_BINS:
        if per_bin[b][0]:
            rows.append(_row(f"{b[0]:.1f}-{b[1]:.1f} m", *per_bin[b]))
    rows.append(_row("**all, 0.3-1.0 m**", all_r, all_d, all_u))
    rows.append(f"\nfusion time per hand: median {np.median(times) * 1e3:.2f} ms, p90 {np.percentile(times, 90) * 1e3:.2f} ms")
    return rows


def end_to_end(scenes, fit_mano: bool) -> list[str]:
    from hand_pose_core import HandPoseEstimator

    est = HandPoseEstimator(tracking=False, max_hands=1, fit_mano=fit_mano, with_mesh=False)
    e_rgb, e_d, used, e2d, oracle, e_placed, times = [], [], [], [], [], [], []
    for h in scenes:
        a = est(h.rgb, h.K)
        b = est(h.rgb, h.K, h.depth_mm)
        times.append(est.last_timings_ms.get("depth", 0.0))
        if not a or not b:
            continue
        J = h.joints_cam_m
        e_rgb.append(_mpjpe_mm(a[0].joints_3d, J))
        e_d.append(_mpjpe_mm(b[0].joints_3d, J))
        e_placed.append(_mpjpe_mm(b[0].extras.get("joints_3d_placed_m", b[0].joints_3d), J))
        used.append(b[0].depth_used)
        e2d.append(float(np.linalg.norm(a[0].joints_2d - project(J, h.K), axis=1).mean()))
        oracle.append(_mpjpe_mm(unproject(a[0].joints_2d, J[:, 2], h.K), J))
    extra = (f" {np.mean(e2d):.1f} / {np.median(e2d):.1f} px | {np.mean(oracle):.1f} mm |"
             + (f" {np.mean(e_placed):.1f} mm |" if fit_mano else ""))
    name = "estimator, MANO fit (`joints_3d`)" if fit_mano else "estimator, no MANO fit"
    return [_row(f"{name}, {len(e_rgb)} of {len(scenes)} detected", e_rgb, e_d, used, extra),
            f"\ndepth stage time per frame (1 hand): median {np.median(times):.2f} ms"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hands", type=int, default=200, help="rendered hands for measurement A")
    ap.add_argument("--e2e-hands", type=int, default=60, help="rendered hands for measurement B (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mano-root", default=None, help="official MANO model instead of the synthetic one")
    args = ap.parse_args()

    from rgbd_render import HandScene

    scene = HandScene(mano_root=args.mano_root)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    scenes = [scene.sample(rng, z_range=(0.3, 1.0), size_range=(0.8, 1.25)) for _ in range(max(args.hands, args.e2e_hands))]
    t_render = time.perf_counter() - t0
    scene.close()
    import cv2

    print(f"# RGB-D fusion on rendered RGB-D ({platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, numpy {np.__version__}, opencv {cv2.__version__}; "
          f"{len(scenes)} hands rendered 640x480, fx=600, in {t_render:.0f} s)")
    print("\nmean / median camera-frame joint error (mm) over the 21 joints; 'depth used' = hands the fusion "
          "accepted (the rest fall back to RGB)\n")
    header = "| hands at | n | RGB only | with depth | depth used |"
    for uv_s, rel_s in ((1.5, 0.006), (3.0, 0.010)):
        print(f"A. fusion stage, 2D noise {uv_s} px, network joint noise {rel_s * 1e3:.0f} mm per axis, "
              "hand size 0.8-1.25x average\n")
        print(header + "\n|---|---|---|---|---|")
        print("\n".join(stage(scenes[:args.hands], uv_s, rel_s, args.seed + 1)))
        print()
    if args.e2e_hands:
        print("B. whole estimator on the rendered images (0.3-1.0 m)\n")
        print("| | n | RGB only | with depth | depth used | 2D error of the landmarks | 2D at true z | fused joints before the MANO fit |")
        print("|---|---|---|---|---|---|---|---|")
        for fit in (False, True):
            lines = end_to_end(scenes[:args.e2e_hands], fit)
            print(lines[0] + ("" if fit else " - |"))
        print(lines[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
