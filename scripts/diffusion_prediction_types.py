#!/usr/bin/env python3
"""Compare diffusion parameterisations on random skeleton hands (training.random_hands):
train a small 2D-conditioned denoiser (no image encoder) for N steps, then report the held-out
root-relative MPJPE of the mean of K hypotheses, the mean per-hypothesis error, the spread and
its correlation with the error at 1, 2, 4 and 10 DDIM steps.

    python scripts/diffusion_prediction_types.py '{"prediction_type": "v_prediction"}' 1500
    python scripts/diffusion_prediction_types.py '{"prediction_type": "epsilon", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}' 1500

The JSON adds to / overrides the model config below. Numbers: docs/training.md.
"""
import json
import sys
import time

import numpy as np
import torch

from training.datasets.collate import collate_samples
from training.metrics import rr_mpjpe
from training.random_hands import RandomHands
from training.tasks import build_task

torch.set_num_threads(1)
model = dict(backbone="none", width=256, depth=3, cond_dim=128, crop_size_px=64, joint_scale_m=0.05)
model.update(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
S = model["crop_size_px"]
ds = RandomHands(4000, S, seed=1)
tr = collate_samples([ds[i] for i in range(len(ds))])
ds = RandomHands(300, S, seed=99)
te = collate_samples([ds[i] for i in range(len(ds))])
torch.manual_seed(0)
task = build_task("diffusion", {"model": model, "eval_hypotheses": 5})
m = task.build_model()
opt = torch.optim.AdamW(m.parameters(), 2e-3)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=iters, pct_start=0.1)
t0 = time.time()
for it in range(iters):
    idx = torch.randint(0, len(tr["id"]), (128,))
    b = {k: (v[idx] if torch.is_tensor(v) else v) for k, v in tr.items()}
    loss, logs = task.loss(m, b)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
print(f"model {model}, {iters} steps in {time.time() - t0:.0f} s, last loss {logs['loss']:.3f}")
m.eval()
for steps in (1, 2, 4, 10):
    task.eval_steps = steps
    p = task.predict(m, te)
    e = float(rr_mpjpe(p["joints_cam_m"], te["joints_cam_m"]).mean()) * 1000
    hyp = p["hypotheses_cam_m"] - p["hypotheses_cam_m"][:, :, :1]
    gt = te["joints_cam_m"] - te["joints_cam_m"][:, :1]
    eh = float((hyp - gt[:, None]).norm(dim=-1).mean()) * 1000
    err = ((p["joints_cam_m"] - p["joints_cam_m"][:, :1]) - gt).norm(dim=-1)[:, 1:].flatten().numpy()
    sp = p["joints_std_m"][:, 1:].flatten().numpy()
    c = np.corrcoef(sp, err)[0, 1]
    print(f"steps {steps:2d}: mean-of-K {e:.1f} mm, per-hypothesis {eh:.1f} mm, spread {sp.mean() * 1000:.1f} mm, "
          f"corr(spread, error) {c:.2f}")
