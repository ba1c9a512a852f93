"""CLI helpers, overlay drawing, video decoding and the sample-image lookup."""
from pathlib import Path

import numpy as np
import pytest

from hand_pose_core import cli
from hand_pose_core.frames import FrameSourceError, iter_frames, read_rgb, read_video_rgb
from hand_pose_core.overlay import draw_hands
from hand_pose_core.samples import SampleUnavailableError, builtin_sample_image
from hand_pose_core.types import Hand

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def test_parse_K_builds_matrix_and_rejects_bad_text():
    K = cli.parse_K("500,510,320,240")
    np.testing.assert_allclose(K, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    assert cli.parse_K(None) is None
    for bad in ("500,510,320", "a,b,c,d", "nan,500,320,240", "0,500,320,240"):
        with pytest.raises(ValueError):
            cli.parse_K(bad)


def _fake_hand_from_geometry():
    """A Hand built from geometry (not from a network): a flat fan of joints 0.5 m away."""
    K = np.array([[500.0, 0, 160], [0, 500.0, 120], [0, 0, 1]])
    joints = np.zeros((21, 3))
    for finger in range(5):
        angle = np.deg2rad(-60 + 30 * finger)
        for k in range(4):
            r = 0.03 + 0.02 * k
            joints[1 + 4 * finger + k] = [r * np.sin(angle), -r * np.cos(angle), 0]
    joints += [0, 0.02, 0.5]
    uv = joints[:, :2] / joints[:, 2:] * 500 + [160, 120]
    verts = joints[[0, 4, 8, 12, 16, 20]]
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5]], np.int32)
    return Hand(side="right", score=0.9, joints_2d=uv.astype(np.float32), joints_3d=joints.astype(np.float32),
                vertices=verts.astype(np.float32), faces=faces), K


def test_overlay_draws_skeleton_and_mesh_where_the_hand_is():
    image = np.full((240, 320, 3), 30, np.uint8)
    hand, K = _fake_hand_from_geometry()
    skeleton_only = draw_hands(image, [hand], K, draw_mesh=False)
    with_mesh = draw_hands(image, [hand], K, draw_mesh=True)
    assert image.max() == 30, "input image must not be modified"
    changed = np.any(skeleton_only != image, axis=2)
    u, v = np.round(hand.joints_2d[8]).astype(int)
    assert changed[v, u], "index fingertip is not drawn"
    assert not changed[5, 5], "far corner must stay untouched"
    assert np.count_nonzero(np.any(with_mesh != skeleton_only, axis=2)) > 100, "mesh was not drawn"


def test_iter_frames_reads_image_folder_and_rejects_bad_sources(tmp_path):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((8, 10, 3), i * 40, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    frames, count, rate = iter_frames(tmp_path, fps=12)
    frames = list(frames)
    assert count == 3 and rate == 12 and frames[2].shape == (8, 10, 3) and frames[2][0, 0, 0] == 80
    with pytest.raises(FileNotFoundError):
        iter_frames(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="cannot open video"):
        iter_frames(bad)
    with pytest.raises(FrameSourceError, match="cannot open video"):
        read_video_rgb(bad)
    with pytest.raises(FrameSourceError, match="cannot read image"):
        read_rgb(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameSourceError, match="holds no images"):
        iter_frames(tmp_path / "empty")


def test_iter_frames_decodes_the_real_video():
    video = REAL / "asl_hand.25fps.mp4"
    if not video.is_file():
        pytest.skip(f"shared real footage not found at {REAL}")
    frames, count, rate = iter_frames(video)
    first = next(frames)
    assert count == 325 and abs(rate - 25) < 0.01
    assert first.shape == (1080, 620, 3) and first.dtype == np.uint8
    assert first.std() > 10, "decoded frame is blank"


def test_predict_reports_missing_images_before_loading_networks(tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "nope.jpg"), "--no-mesh"]) == 1
    assert "no such image" in capsys.readouterr().err


def test_sample_image_is_found_in_the_cache_without_fetching(tmp_path, monkeypatch):
    monkeypatch.setenv("HAND_POSE_CACHE_DIR", str(tmp_path))
    if Path("/usr/share/doc/opencv-doc/opencv4/html/handSrc.jpg").is_file():
        pytest.skip("opencv-doc is installed system-wide; the no-fetch error path cannot be exercised")
    with pytest.raises(SampleUnavailableError):
        builtin_sample_image(fetch=False)
    target = tmp_path / "samples" / "handSrc.jpg"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"jpeg bytes")
    assert builtin_sample_image(fetch=False) == target


@pytest.mark.heavy
def test_predict_and_run_end_to_end_on_real_footage(tmp_path, capsys):
    """`hand-pose predict` on a real photo and `hand-pose run` on real video frames write
    JSON with metric hands and overlays that decode again."""
    import json

    import cv2

    photo, video = REAL / "hands.jpg", REAL / "asl_hand.25fps.mp4"
    if not (photo.is_file() and video.is_file()):
        pytest.skip(f"shared real footage not found at {REAL}")
    out_json = tmp_path / "hands.json"
    assert cli.main(["predict", str(photo), "--json", str(out_json), "--overlay", str(tmp_path / "ov"),
                     "--K", "700,700,360,191"]) == 0
    (result,) = json.loads(out_json.read_text())
    assert len(result["hands"]) == 2
    for hand in result["hands"]:
        assert hand["calibrated"] is True and len(hand["joints_3d_cam_m"]) == 21
        assert 0.1 < hand["joints_3d_cam_m"][0][2] < 3.0
    overlay = cv2.imread(str(tmp_path / "ov" / "hands_hands.png"))
    assert overlay is not None and overlay.shape == (382, 720, 3)

    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    frames, _, _ = iter_frames(video)
    for i, frame in zip(range(6), frames):
        cv2.imwrite(str(frames_dir / f"{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out_jsonl, out_mp4 = tmp_path / "results.jsonl", tmp_path / "overlay.mp4"
    assert cli.main(["run", str(frames_dir), "--output", str(out_jsonl), "--overlay", str(out_mp4), "--fps", "25"]) == 0
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(6))
    assert all(len(line["hands"]) == 1 and line["hands"][0]["side"] == "right" for line in lines)
    assert all(line["hands"][0]["calibrated"] is False for line in lines)  # no --K given
    capture = cv2.VideoCapture(str(out_mp4))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    ok, first = capture.read()
    assert ok and first.shape == (1080, 620, 3)
    capture.release()
