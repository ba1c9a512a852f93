"""Pure pipeline maths: palm anchors, palm decoding + weighted NMS, ROI geometry, crops,
landmark un-projection and handedness. Synthetic data only; fast."""
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from hand_pose_core.pipeline import roi as R
from hand_pose_core.pipeline.anchors import generate_anchors, palm_anchors
from hand_pose_core.pipeline.handedness import side_from_handedness
from hand_pose_core.pipeline.landmarks import crop_to_image_landmarks, rotate_world_to_image
from hand_pose_core.pipeline.palm_decoding import (
    box_iou, decode_boxes, decode_palm_detections, sigmoid_scores, unletterbox_detections,
    weighted_nms)


# -- anchors ---------------------------------------------------------------------------
def test_anchor_count_layout_and_values():
    a = palm_anchors()
    assert a.shape == (2016, 4) and a.dtype == np.float32
    assert np.all(a[:, 2:] == 1.0)  # fixed anchor size
    # first grid: 24x24 cells x 2 anchors, row-major (y outer, x inner), anchors of a cell adjacent
    np.testing.assert_allclose(a[0, :2], [0.5 / 24, 0.5 / 24])
    np.testing.assert_array_equal(a[0], a[1])
    np.testing.assert_allclose(a[2, :2], [1.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(a[2 * 24, :2], [0.5 / 24, 1.5 / 24])
    np.testing.assert_allclose(a[1151, :2], [23.5 / 24, 23.5 / 24])
    # second grid: 12x12 cells x 6 anchors (three stride-16 layers merged)
    second = a[1152:]
    assert second.shape[0] == 12 * 12 * 6
    np.testing.assert_allclose(second[:6, :2], np.tile([0.5 / 12, 0.5 / 12], (6, 1)))
    np.testing.assert_allclose(second[6, :2], [1.5 / 12, 0.5 / 12])
    np.testing.assert_allclose(second[-1, :2], [11.5 / 12, 11.5 / 12])
    with pytest.raises(ValueError):
        palm_anchors()[0, 0] = 3.0  # cached array is read-only


def test_generate_anchors_other_layouts():
    assert generate_anchors(128, (8, 16, 16, 16)).shape[0] == 16 * 16 * 2 + 8 * 8 * 6
    assert generate_anchors(192, (8, 16, 32)).shape[0] == (24 * 24 + 12 * 12 + 6 * 6) * 2


# -- decoding --------------------------------------------------------------------------
def _raw_for(anchor_idx, box_norm, kps_norm, n=2016):
    """Raw regressors that decode to ``box_norm`` (cx, cy, w, h) and ``kps_norm`` (7, 2)."""
    a = palm_anchors()[anchor_idx]
    raw = np.zeros((n, 18), np.float32)
    raw[anchor_idx, 0:2] = (np.asarray(box_norm[:2]) - a[:2]) * 192
    raw[anchor_idx, 2:4] = np.asarray(box_norm[2:]) * 192
    raw[anchor_idx, 4:] = ((np.asarray(kps_norm) - a[:2]) * 192).reshape(-1)
    return raw


def test_decode_boxes_inverts_the_encoding():
    rng = np.random.default_rng(0)
    kps = rng.uniform(0.2, 0.8, (7, 2))
    raw = _raw_for(1500, (0.4, 0.6, 0.2, 0.1), kps)
    boxes, out_kps = decode_boxes(raw)
    np.testing.assert_allclose(boxes[1500], [0.3, 0.55, 0.5, 0.65], atol=1e-6)
    np.testing.assert_allclose(out_kps[1500], kps, atol=1e-6)
    # a zero regressor decodes to its anchor centre
    a0 = palm_anchors()[0, :2]
    np.testing.assert_allclose(boxes[0], np.r_[a0, a0], atol=1e-7)
    with pytest.raises(ValueError, match="raw palm boxes"):
        decode_boxes(raw[:, :17])


def test_sigmoid_clips_extreme_logits():
    s = sigmoid_scores(np.array([-1e9, 0.0, 1e9]))
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, [1 / (1 + np.exp(100)), 0.5, 1 / (1 + np.exp(-100))])


def test_weighted_nms_averages_overlaps_with_score_weights():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0],      # top
                      [0.1, 0.0, 1.1, 1.0],      # overlaps top (IoU ~0.82)
                      [5.0, 5.0, 6.0, 6.0],      # separate
                      [0.5, 0.5, 1.5, 1.5]])     # IoU 0.14 with top: not merged, own group
    kps = np.repeat(boxes[:, None, :2], 7, axis=1)
    scores = np.array([0.9, 0.6, 0.8, 0.55])
    dets = weighted_nms(scores, boxes, kps, iou_threshold=0.3)
    assert [round(d.score, 2) for d in dets] == [0.9, 0.8, 0.55]
    w = np.array([0.9, 0.6]) / 1.5
    np.testing.assert_allclose(dets[0].box_px, w @ boxes[:2])
    np.testing.assert_allclose(dets[0].keypoints_px[0], w @ boxes[:2, :2])
    np.testing.assert_allclose(dets[1].box_px, boxes[2])
    assert len(weighted_nms(scores, boxes, kps, 0.3, max_detections=1)) == 1
    # IoU helper
    np.testing.assert_allclose(box_iou(boxes[0], boxes[:3]), [1.0, 0.9 / 1.1, 0.0])


def test_decode_thresholds_scores_and_merges_neighbours():
    logits = np.full((2016, 1), -10.0, np.float32)
    kps = np.full((7, 2), 0.5)
    raw = _raw_for(300, (0.5, 0.5, 0.2, 0.2), kps) + _raw_for(302, (0.52, 0.5, 0.2, 0.2), kps)
    logits[300], logits[302] = 3.0, 1.0
    dets = decode_palm_detections(raw, logits, min_score=0.5, iou_threshold=0.3)
    assert len(dets) == 1
    p0, p1 = sigmoid_scores(np.array([3.0, 1.0]))
    np.testing.assert_allclose(dets[0].score, p0)
    cx = (dets[0].box_px[0] + dets[0].box_px[2]) / 2
    np.testing.assert_allclose(cx, (0.5 * p0 + 0.52 * p1) / (p0 + p1), atol=1e-6)
    assert decode_palm_detections(raw, logits, min_score=0.99) == []


def test_letterbox_round_trip_of_detections():
    img = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(img, (500, 100), 20, (255, 255, 255), -1)
    x, m = R.letterbox(img, 192)
    assert x.shape == (192, 192, 3)
    np.testing.assert_allclose(m[0, 0], 0.3)
    # the bright disc lands where the affine says
    ys, xs = np.nonzero(x[..., 0] > 128)
    np.testing.assert_allclose([xs.mean(), ys.mean()], R.apply_affine(m, [500, 100]), atol=0.5)
    # zero padding top and bottom (24 rows each)
    assert x[:23].max() == 0 and x[-23:].max() == 0
    # normalised detector coordinates back to image pixels (pixel centres)
    from hand_pose_core.pipeline.palm_decoding import PalmDetection
    pts = np.array([[500.0, 100.0], [10.0, 470.0]])
    norm = R.apply_affine(m, pts + 0.5) / 192  # continuous image -> normalised input
    det = PalmDetection(0.9, np.r_[norm[0], norm[1]], np.repeat(norm[:1], 7, 0))
    back = unletterbox_detections([det], m)[0]
    np.testing.assert_allclose(back.box_px, [500, 100, 10, 470], atol=1e-6)
    np.testing.assert_allclose(back.keypoints_px[3], [500, 100], atol=1e-6)


# -- ROI geometry --------------------------------------------------------------------------
@pytest.mark.parametrize("direction,expected", [((0, -1), 0.0), ((1, 0), np.pi / 2),
                                                ((-1, 0), -np.pi / 2), ((1, -1), np.pi / 4)])
def test_rotation_points_wrist_to_middle_mcp_up(direction, expected):
    assert R.rotation_up(np.zeros(2), np.array(direction, float)) == pytest.approx(expected)


def test_palm_to_roi_scale_shift_and_square():
    box = np.array([100.0, 200.0, 140.0, 220.0])  # 40 x 20 px
    kps = np.zeros((7, 2))
    kps[0], kps[2] = [120, 230], [120, 190]  # fingers up
    cx, cy, size, rot = R.palm_to_roi(box, kps)
    assert rot == pytest.approx(0.0)
    assert size == pytest.approx(40 * 2.6)
    assert (cx, cy) == pytest.approx((120.0, 210.0 - 0.5 * 20))  # shifted half a box height up
    kps[2] = [160, 230]  # fingers to the right: shift goes +x
    cx, cy, size, rot = R.palm_to_roi(box, kps)
    assert rot == pytest.approx(np.pi / 2)
    assert (cx, cy) == pytest.approx((120.0 + 0.5 * 20, 210.0))


def test_landmarks_to_roi_follows_a_rotated_hand():
    rng = np.random.default_rng(1)
    # an upright synthetic hand: wrist at the bottom, fingers up
    hand = np.zeros((21, 2))
    hand[0] = [0, 60]
    for f, x in enumerate([-40, -20, 0, 20, 40]):
        for k in range(4):
            hand[1 + 4 * f + k] = [x * (1 + 0.1 * k), 20 - 25 * k]
    hand[[5, 9, 13]] = [[-20, 20], [0, 20], [20, 20]]
    r0 = R.landmarks_to_roi(hand + [300, 200])
    assert r0[3] == pytest.approx(0.0, abs=1e-9)
    for ang in rng.uniform(-np.pi, np.pi, 5):
        c, s = np.cos(ang), np.sin(ang)
        pts = hand @ np.array([[c, s], [-s, c]]) + [300, 200]  # rotate by ang (image frame)
        r = R.landmarks_to_roi(pts)
        assert R.normalize_radians(r[3] - ang) == pytest.approx(0.0, abs=1e-9)
        assert r[2] == pytest.approx(r0[2])
        expected = np.array([[c, -s], [s, c]]) @ np.subtract(r0[:2], [300, 200])
        np.testing.assert_allclose(np.subtract(r[:2], [300, 200]), expected, atol=1e-9)


def test_crop_round_trip_is_identity_and_warp_matches():
    rng = np.random.default_rng(2)
    roi = (321.7, 204.3, 151.2, 0.7)
    a = R.roi_to_crop_affine(roi)
    crop_pts = rng.uniform(0, 224, (50, 2))
    img_pts = R.apply_affine(a, crop_pts)
    back = R.apply_affine(R.invert_affine(a), img_pts)
    np.testing.assert_allclose(back, crop_pts, atol=1e-4)
    # landmark un-projection: crop centre -> ROI centre, crop edges scaled by size
    lm = np.array([[112.0, 112.0, 10.0], [224.0, 112.0, 0.0]])
    out = crop_to_image_landmarks(lm, roi)
    np.testing.assert_allclose(out[0], [roi[0], roi[1], 10.0 * roi[2] / 224], atol=1e-9)
    half = roi[2] / 2
    expected = [roi[0] + np.cos(0.7) * half, roi[1] + np.sin(0.7) * half]
    np.testing.assert_allclose(out[1, :2], expected)
    # the pixel warp agrees with the affine: a dot drawn in the image appears at the mapped spot
    img = np.zeros((480, 640, 3), np.uint8)
    target_crop = np.array([60.5, 150.5])  # continuous coords of a crop pixel centre
    p = R.apply_affine(a, target_crop)
    cv2.circle(img, tuple(int(round(v)) for v in p), 6, (255, 255, 255), -1)
    crop, a2 = R.crop_roi(img, roi)
    np.testing.assert_allclose(a2, a)
    ys, xs = np.nonzero(crop[..., 0] > 100)
    centroid = np.array([xs.mean(), ys.mean()])
    # MediaPipe's sampling convention: crop pixel j shows image index a(j) + 0.5
    expected = R.apply_affine(R.invert_affine(a), np.round(p) - 0.5)
    np.testing.assert_allclose(centroid, expected, atol=0.3)


def test_world_rotation_matches_the_crop_rotation():
    roi = (0.0, 0.0, 224.0, 0.6)
    w = np.array([[0.01, 0.0, 0.02], [0.0, -0.03, 0.0]])
    out = rotate_world_to_image(w, roi)
    a = R.roi_to_crop_affine(roi)[:, :2]  # crop direction -> image direction
    np.testing.assert_allclose(out[:, :2], w[:, :2] @ a.T, atol=1e-12)
    np.testing.assert_allclose(out[:, 2], w[:, 2])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(w, axis=1))


def test_handedness_mapping():
    assert side_from_handedness(0.9) == ("right", pytest.approx(0.9))
    assert side_from_handedness(0.2) == ("left", pytest.approx(0.8))
    assert side_from_handedness(0.9, mirrored=True)[0] == "left"
    assert side_from_handedness(0.2, mirrored=True)[0] == "right"
    with pytest.raises(ValueError, match="finite"):
        side_from_handedness(float("nan"))
