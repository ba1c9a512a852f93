"""TensorBoard scalars of a run as one PNG picture (for docs and reports; no matplotlib needed).

    python -m training.curves runs/mano_regressor_synthetic --out docs/training_curves.png \\
        --tags train/loss val/pa_mpjpe_mm train/lr perf/images_per_s

Reads the event files of ``RUN/tb`` (or the folder given) with TensorBoard's event reader and
draws one panel per tag with Pillow: the raw values, a smoothed line (exponential moving average,
like TensorBoard's slider; not for learning rates) and axis labels. ``--log`` tags use a logarithmic y axis.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

DEFAULT_TAGS = ("train/loss", "val/pa_mpjpe_mm", "train/lr", "perf/images_per_s")


def read_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of every scalar in the event files under ``logdir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = Path(logdir)
    if (logdir / "tb").is_dir():
        logdir = logdir / "tb"
    if not any(logdir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"no TensorBoard event files in {logdir}")
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        by_step = {}
        for e in acc.Scalars(tag):
            by_step[e.step] = e.value  # a resumed run rewrote purged steps: keep the last value
        out[tag] = sorted(by_step.items())
    return out


def _ema(values: list[float], weight: float) -> list[float]:
    out, last = [], None
    for v in values:
        last = v if last is None else weight * last + (1 - weight) * v
        out.append(last)
    return out


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-2:
        return f"{v:.0e}"
    return f"{v:.3g}"


def draw_panel(draw, box, title: str, points: list[tuple[int, float]], log_y: bool, smooth: float, font):
    x0, y0, x1, y1 = box
    left, right, top, bottom = x0 + 58, x1 - 12, y0 + 26, y1 - 34
    draw.rectangle([x0, y0, x1, y1], fill=(255, 255, 255))
    draw.text((x0 + 8, y0 + 6), title, fill=(20, 20, 20), font=font)
    pts = [(s, v) for s, v in points if math.isfinite(v) and (v > 0 or not log_y)]
    if not pts:
        draw.text((left + 10, top + 10), "no data", fill=(150, 0, 0), font=font)
        return
    steps = [s for s, _ in pts]
    vals = [math.log10(v) if log_y else v for _, v in pts]
    sx0, sx1 = min(steps), max(steps)
    if sx1 == sx0:
        sx1 = sx0 + 1
    vy0, vy1 = min(vals), max(vals)
    if vy1 - vy0 < 1e-12:
        vy0, vy1 = vy0 - 0.5, vy1 + 0.5
    pad = 0.05 * (vy1 - vy0)
    vy0, vy1 = vy0 - pad, vy1 + pad

    def X(s):
        return left + (s - sx0) / (sx1 - sx0) * (right - left)

    def Y(v):
        return bottom - (v - vy0) / (vy1 - vy0) * (bottom - top)

    draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
    yticks = [t for t in range(math.floor(vy0), math.ceil(vy1) + 1) if vy0 <= t <= vy1] if log_y else _nice_ticks(vy0, vy1)
    if log_y and len(yticks) < 2:  # less than a decade: round values, placed on the log axis
        yticks = [math.log10(t) for t in _nice_ticks(10 ** vy0, 10 ** vy1, 4) if t > 0]
    for t in yticks:
        y = Y(t)
        draw.line([left, y, right, y], fill=(230, 230, 230))
        label = _fmt(10 ** t) if log_y else _fmt(t)
        draw.text((x0 + 4, y - 6), label, fill=(60, 60, 60), font=font)
    for t in _nice_ticks(sx0, sx1, 4):
        x = X(t)
        draw.line([x, top, x, bottom], fill=(235, 235, 235))
        draw.text((x - 12, bottom + 4), f"{int(t)}", fill=(60, 60, 60), font=font)
    draw.text(((left + right) // 2 - 12, bottom + 18), "step", fill=(60, 60, 60), font=font)
    xy = [(X(s), Y(v)) for s, v in zip(steps, vals)]
    if len(xy) == 1:
        x, y = xy[0]
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(30, 90, 200))
        return
    if smooth > 0 and len(xy) > 3:
        draw.line(xy, fill=(170, 200, 240), width=1)
        sm = _ema(vals, smooth)
        draw.line([(X(s), Y(v)) for s, v in zip(steps, sm)], fill=(30, 90, 200), width=2)
    else:
        draw.line(xy, fill=(30, 90, 200), width=2)
        for x, y in xy:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=(30, 90, 200))


def render(scalars: dict, tags, out, log_tags=(), smooth: float = 0.6, title: str | None = None,
           panel=(420, 260), columns: int = 2) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    tags = [t for t in tags if t in scalars] or sorted(scalars)
    if not tags:
        raise ValueError("no scalars to draw")
    cols = min(columns, len(tags))
    rows = math.ceil(len(tags) / cols)
    head = 30 if title else 0
    W, H = panel
    img = Image.new("RGB", (cols * W + (cols + 1) * 8, rows * H + (rows + 1) * 8 + head), (240, 240, 240))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    if title:
        d.text((10, 8), title, fill=(0, 0, 0), font=font)
    for i, tag in enumerate(tags):
        r, c = divmod(i, cols)
        x0, y0 = 8 + c * (W + 8), head + 8 + r * (H + 8)
        log_y = tag in log_tags
        draw_panel(d, (x0, y0, x0 + W, y0 + H), tag + ("  (log scale)" if log_y else ""), scalars[tag], log_y,
                   smooth if len(scalars[tag]) > 10 and not tag.endswith("lr") else 0.0, font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.curves", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run folder (with tb/) or a TensorBoard log folder")
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--tags", nargs="*", default=list(DEFAULT_TAGS), help="scalar tags, one panel each")
    ap.add_argument("--log", nargs="*", default=["train/loss"], help="tags drawn with a log y axis")
    ap.add_argument("--smooth", type=float, default=0.6, help="EMA weight of the smoothed line (0 = off)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    try:
        scalars = read_scalars(args.run)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    missing = [t for t in args.tags if t not in scalars]
    if missing:
        print(f"[curves] not in the event files (skipped): {', '.join(missing)}; present: {', '.join(sorted(scalars))}",
              file=sys.stderr)
    path = render(scalars, args.tags, args.out, set(args.log), args.smooth, args.title)
    print(f"[curves] wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
