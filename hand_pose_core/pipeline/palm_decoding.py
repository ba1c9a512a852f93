"""Decode the palm detector's raw outputs into palm detections in image pixels.

Raw box regressors are offsets in 192-px input units relative to the anchors
(:mod:`.anchors`): box centre, box size, then 7 palm keypoints (x, y). Scores are logits.
Overlapping detections are merged by weighted NMS: every detection that overlaps the
best remaining one by more than the IoU threshold is averaged into it with its score as
weight (this steadies the box far more than plain suppression).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anchors import PALM_INPUT_SIZE_PX, palm_anchors

NUM_PALM_KEYPOINTS = 7
SCORE_CLIP = 100.0


@dataclass
class PalmDetection:
    """One palm. ``box_px`` is (x_min, y_min, x_max, y_max); ``keypoints_px`` is (7, 2):
    0 wrist, 1 index MCP, 2 middle MCP, 3 ring MCP, 4 pinky MCP, 5-6 thumb. Coordinates are
    in the frame the decoder was given (normalised [0, 1] or pixels after mapping)."""

    score: float
    box_px: np.ndarray
    keypoints_px: np.ndarray


def sigmoid_scores(score_logits: np.ndarray) -> np.ndarray:
    """Sigmoid of logits clipped to +-100 (as the reference decoder does)."""
    x = np.clip(np.asarray(score_logits, np.float64), -SCORE_CLIP, SCORE_CLIP)
    return 1.0 / (1.0 + np.exp(-x))


def decode_boxes(raw_boxes: np.ndarray, anchors: np.ndarray | None = None,
                 input_size_px: int = PALM_INPUT_SIZE_PX) -> tuple[np.ndarray, np.ndarray]:
    """Decode raw regressors [N, 18] into normalised boxes and keypoints.

    Returns (boxes [N, 4] as x_min, y_min, x_max, y_max; keypoints [N, 7, 2]), both in
    [0, 1] units of the (letterboxed) detector input.
    """
    anchors = palm_anchors() if anchors is None else anchors
    raw = np.asarray(raw_boxes, np.float64)
    n_coords = 4 + 2 * NUM_PALM_KEYPOINTS
    if raw.ndim != 2 or raw.shape[1] != n_coords or raw.shape[0] != anchors.shape[0]:
        raise ValueError(f"raw palm boxes must be [{anchors.shape[0]}, 18], got {raw.shape}")
    a_xy, a_wh = anchors[:, None, 0:2].astype(np.float64), anchors[:, None, 2:4].astype(np.float64)
    centre = raw[:, None, 0:2] / input_size_px * a_wh + a_xy
    size = raw[:, None, 2:4] / input_size_px * a_wh
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=-1)[:, 0]
    kps = raw[:, 4:].reshape(-1, NUM_PALM_KEYPOINTS, 2) / input_size_px * a_wh + a_xy
    return boxes, kps


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] against boxes [N, 4] (x_min, y_min, x_max, y_max)."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    union = _area(box) + _area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                 iou_threshold: float = 0.3,
                 max_detections: int | None = None) -> list[PalmDetection]:
    """Weighted non-maximum suppression.

    Repeatedly take the highest-scoring remaining detection, gather all remaining ones with
    IoU > ``iou_threshold`` against it (itself included), and emit their score-weighted
    mean box and keypoints with the top score. Returns detections sorted by score.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order.copy()
    out: list[PalmDetection] = []
    while remaining.size and (max_detections is None or len(out) < max_detections):
        top = remaining[0]
        ious = box_iou(boxes[top], boxes[remaining])
        group = remaining[ious > iou_threshold]
        if top not in group:  # degenerate (zero-area) top box: keep it alone
            group = np.array([top])
        w = scores[group] / scores[group].sum()
        box = (boxes[group] * w[:, None]).sum(0)
        kps = (keypoints[group] * w[:, None, None]).sum(0)
        out.append(PalmDetection(float(scores[top]), box, kps))
        remaining = remaining[~np.isin(remaining, group)]
    return out


def decode_palm_detections(raw_boxes: np.ndarray, score_logits: np.ndarray,
                           min_score: float = 0.5, iou_threshold: float = 0.3,
                           max_detections: int | None = None) -> list[PalmDetection]:
    """Raw outputs of one image ([2016, 18], [2016, 1] or [2016]) -> palms in normalised
    detector-input coordinates, after thresholding and weighted NMS."""
    scores = sigmoid_scores(np.asarray(score_logits).reshape(-1))
    raw = np.asarray(raw_boxes)
    anchors = palm_anchors()
    if raw.ndim != 2 or raw.shape[0] != anchors.shape[0]:
        raise ValueError(f"raw palm boxes must be [{anchors.shape[0]}, 18], got {raw.shape}")
    keep = scores >= min_score
    if not keep.any():
        return []
    # decode only the anchors above the threshold (a handful of 2016)
    boxes, kps = decode_boxes(raw[keep], anchors[keep])
    return weighted_nms(scores[keep], boxes, kps, iou_threshold, max_detections)


def unletterbox_detections(dets: list[PalmDetection], letterbox_m: np.ndarray,
                           input_size_px: int = PALM_INPUT_SIZE_PX) -> list[PalmDetection]:
    """Map detections from normalised letterboxed input to image pixels (pixel-centre
    convention).

    ``letterbox_m`` is :func:`.roi.letterbox_transform`'s affine, continuous image coords ->
    continuous input coords.
    """
    a = np.asarray(letterbox_m, np.float64)
    s, t = a[0, 0], a[:, 2]

    def to_img(p_norm: np.ndarray) -> np.ndarray:
        # normalised -> continuous input -> continuous image -> pixel centres
        return (p_norm * input_size_px - t) / s - 0.5

    out = []
    for d in dets:
        box = np.concatenate([to_img(d.box_px[:2]), to_img(d.box_px[2:])])
        out.append(PalmDetection(d.score, box, to_img(d.keypoints_px)))
    return out
