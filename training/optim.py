"""Optimizer and learning-rate schedule from the config's ``optim`` and ``schedule`` sections.

The schedule is a pure function of the step (:func:`lr_factor`): the trainer sets each group's
learning rate to ``base lr x lr_factor(step)`` before every step, so a resumed run needs no
scheduler object state, only the step.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights of convolutions/linear layers only (not on biases or norm scales)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(optim_cfg: dict, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, optim_cfg["weight_decay"])
    if not groups:
        raise ValueError("the model has no trainable parameters")
    name, lr = optim_cfg["name"], optim_cfg["lr"]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(optim_cfg["betas"]))
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(optim_cfg["betas"]))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=optim_cfg["momentum"], nesterov=optim_cfg["nesterov"])
    raise ValueError(f"unknown optimizer {name!r}")


def lr_factor(schedule_cfg: dict, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based)."""
    warm = schedule_cfg["warmup_steps"]
    if warm > 0 and step < warm:
        start = schedule_cfg["warmup_start_factor"]
        return start + (1.0 - start) * step / warm
    name = schedule_cfg["name"]
    if name == "constant":
        return 1.0
    if name == "cosine":
        span = max(1, total_steps - warm)
        t = min(1.0, (step - warm) / span)
        lo = schedule_cfg["min_lr_factor"]
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * t))
    if name == "step":
        gamma = schedule_cfg["gamma"]
        if schedule_cfg.get("step_size"):
            return gamma ** (step // schedule_cfg["step_size"])
        return gamma ** sum(step >= m for m in schedule_cfg["milestones"])
    raise ValueError(f"unknown schedule {name!r}")


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    lr = base_lr * factor
    for g in optimizer.param_groups:
        g["lr"] = lr
    return lr
