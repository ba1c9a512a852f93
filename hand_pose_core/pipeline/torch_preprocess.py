"""Pre-processing in torch (for CUDA): the palm letterbox, the rotated ROI crops and the
normalisation, sampled exactly like the numpy/OpenCV path (:mod:`.roi`), on whatever device the
frame tensor lives on.

On a GPU the frame is copied once per call from a reusable pinned host buffer
(:class:`PinnedUploader`, asynchronous copy), and every crop of the frame is sampled on the GPU
in one ``grid_sample`` call, so only the network outputs come back to the host. The same code
runs on the CPU device, which is how it is tested against OpenCV where no GPU exists
(tests/test_torch_preprocess.py). OpenCV's source positions are quantised to 1/32 px and its
output rounded to uint8; this code does the same (without the rounding, float crops moved a
fingertip by 4.6 px on a real frame), leaving differences of one grey level at a few pixels.

Sampling conventions (see :func:`.roi.crop_roi` and :func:`.roi.letterbox`):
* crops: destination pixel index j reads the image at index ``a(j) + 0.5`` where ``a`` is
  :func:`.roi.roi_to_crop_affine`; borders replicate;
* letterbox: destination index j reads image index ``(j - pad) / s``; outside is 0.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .roi import LANDMARK_INPUT_SIZE_PX, Roi, letterbox_transform, roi_to_crop_affine


class PinnedUploader:
    """Copies HxWx3 uint8 frames to ``device`` through one reusable pinned host buffer.

    On the CPU device it wraps the array without copying. ``upload`` returns a [3, H, W]
    float32 tensor in [0, 1] on ``device`` (the conversion runs on the device)."""

    def __init__(self, device: str | torch.device = "cuda") -> None:
        self.device = torch.device(device)
        self._pinned: torch.Tensor | None = None

    def upload(self, image_rgb: np.ndarray) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(image_rgb))
        if self.device.type == "cuda":
            if self._pinned is None or self._pinned.shape != host.shape:
                self._pinned = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
            else:
                # the previous frame's asynchronous copy must finish before the buffer is reused
                torch.cuda.current_stream(self.device).synchronize()
            self._pinned.copy_(host)
            dev = self._pinned.to(self.device, non_blocking=True)
        else:
            dev = host
        return dev.permute(2, 0, 1).float().mul_(1.0 / 255.0)


def _sample(image_chw: torch.Tensor, idx_maps: torch.Tensor, size: int, padding_mode: str) -> torch.Tensor:
    """Bilinear samples of ``image_chw`` [3, H, W] at image indices given by N affine maps
    [N, 2, 3] (destination index -> source index); returns [N, 3, size, size]."""
    _, h, w = image_chw.shape
    dev, dt = image_chw.device, torch.float64
    j = torch.arange(size, device=dev, dtype=dt)
    gy, gx = torch.meshgrid(j, j, indexing="ij")
    dst = torch.stack([gx, gy, torch.ones_like(gx)], -1)  # [S, S, 3]
    src = torch.einsum("nij,yxj->nyxi", idx_maps.to(dev, dt), dst)  # [N, S, S, 2] (x, y) indices
    # as OpenCV: source positions in 1/32 px (INTER_BITS=5), result rounded to uint8 levels
    # below; the networks react to single grey levels on ambiguous fingertips
    src = torch.round(src * 32.0) / 32.0
    # align_corners=True: -1 and +1 are the centres of the first and last pixel (index 0, W-1)
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=dev, dtype=dt)
    grid = (src * scale - 1.0).to(image_chw.dtype)
    n = idx_maps.shape[0]
    out = F.grid_sample(image_chw.unsqueeze(0).expand(n, -1, -1, -1), grid, mode="bilinear",
                        padding_mode=padding_mode, align_corners=True)
    return out.mul_(255.0).round_().mul_(1.0 / 255.0)


def letterbox_torch(image_chw: torch.Tensor, size_px: int) -> tuple[torch.Tensor, np.ndarray]:
    """Letterboxed palm input [1, 3, S, S] in [0, 1] and the :func:`.roi.letterbox_transform`
    affine (image -> input), from a [3, H, W] frame in [0, 1]."""
    _, h, w = image_chw.shape
    m = letterbox_transform(w, h, size_px)
    s, pad = m[0, 0], m[:, 2]
    inv = np.array([[1.0 / s, 0.0, -pad[0] / s], [0.0, 1.0 / s, -pad[1] / s]])
    return _sample(image_chw, torch.from_numpy(inv)[None], size_px, "zeros"), m


def crop_rois_torch(image_chw: torch.Tensor, rois: list[Roi],
                    crop_size_px: int = LANDMARK_INPUT_SIZE_PX) -> torch.Tensor:
    """All ROI crops of a [3, H, W] frame in [0, 1] as one [N, 3, S, S] batch (borders
    replicated), sampled as :func:`.roi.crop_roi` samples them."""
    maps = []
    for roi in rois:
        a = roi_to_crop_affine(roi, crop_size_px).copy()
        a[:, 2] += 0.5
        maps.append(a)
    return _sample(image_chw, torch.from_numpy(np.stack(maps)), crop_size_px, "border")
