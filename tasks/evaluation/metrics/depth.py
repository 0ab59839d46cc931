"""Video depth metrics (the reference's ``tools.depth_evaluation`` and ``eval_depth.py``): AbsRel, delta < 1.25, ...

Per sequence, all frames are stacked and a pixel is valid when 0 < GT < `max_depth_m` (the function's default is
80; the Bonn evaluation passes 70). With p the (scaled) prediction and g the GT on the valid pixels:
AbsRel = mean |p - g| / g, SqRel = mean (p - g)^2 / g (m), RMSE = sqrt mean (p - g)^2 (m); then p is clamped to
>= 1e-5 and LogRMSE = sqrt mean (log p - log g)^2, delta_k = fraction of max(p/g, g/p) < 1.25^k. Alignment
``metric`` uses p as is; ``scale`` fits one scale per sequence:

* ``reference``: s0 = mean g / mean p, then 10 IRLS steps w = 1 / (|s p - g| + 1e-8), s = sum w p g / sum w p^2, with
  s p and p^2 in float32 as torch evaluates them (a 0-dim float64 scale does not promote a float32 tensor), then
  s = max(s, 1e-3); log p in float32, deltas as float32 means; "delta < 1." (always 0) reported.
* ``corrected``: the converged fit, i.e. the minimiser of sum |s p - g| the IRLS tends to (the weighted median of
  g / p with weights |p|), float64 throughout; no "delta < 1.".

Predictions are resized to the GT's size with OpenCV's bicubic (``cv2.INTER_CUBIC``), as the reference does.
The dataset value is the valid-pixel-weighted mean over sequences.
"""

from __future__ import annotations

import math

import numpy as np

from tasks.evaluation.metrics.errors import NoValidPixelsError
from tasks.evaluation.metrics.protocol import Protocol, as_protocol
from tasks.evaluation.metrics.results import DEPTH_METRICS, METRICS, Evaluation, Exclusion, row

DEFAULT_MAX_DEPTH_M = 80.0  # depth_evaluation's default
BONN_MAX_DEPTH_M = 70.0  # what eval_depth.py passes for Bonn
IRLS_STEPS = 10
ALIGNS = ("scale", "metric")


def resize_bicubic(pred: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) float32 depth of a (h, w) prediction, OpenCV bicubic (a = -0.75, half-pixel centres).

    OpenCV (with its IPP path, as the reference ran it) is used as is: its arithmetic cannot be reproduced to the
    bit otherwise (the IPP-free formula differs by up to 8e-6 m here), and metric-mode tolerances are 1e-7.
    """
    import cv2

    return cv2.resize(np.asarray(pred, np.float32), (int(width), int(height)), interpolation=cv2.INTER_CUBIC)


def irls_scale(pred: np.ndarray, gt: np.ndarray, steps: int = IRLS_STEPS) -> float:
    """The reference's scale: mean-ratio start, `steps` IRLS steps in its float32/float64 mix, clamped >= 1e-3.

    pred (N,) float32 and gt (N,) float64 on the valid pixels.
    """
    p32 = np.asarray(pred, np.float32)
    p64 = p32.astype(np.float64)
    g = np.asarray(gt, np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a zero prediction gives inf/NaN, as torch
        s = np.float64(np.mean(g)) / np.float64(np.float32(np.mean(p64)))  # torch's float32 mean of p
        p_sq = (p32 * p32).astype(np.float64)  # pred**2 in float32
        for _ in range(steps):
            sp = (np.float32(s) * p32).astype(np.float64)  # s * pred in float32
            w = 1.0 / (np.abs(sp - g) + 1e-8)
            s = np.sum(w * p64 * g) / np.sum(w * p_sq)
    return float(s) if np.isnan(s) else max(float(s), 1e-3)


def l1_scale(pred: np.ndarray, gt: np.ndarray) -> float:
    """argmin_s sum |s p - g|: the weighted median of g / p with weights |p| (float64), clamped >= 1e-3."""
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    nz = p != 0
    if not nz.any():  # every scale gives the same cost: the clamp's floor, as the reference's clamp would
        return 1e-3
    ratio, weight = g[nz] / p[nz], np.abs(p[nz])
    order = np.argsort(ratio, kind="stable")
    cum = np.cumsum(weight[order])
    k = int(np.searchsorted(cum, 0.5 * cum[-1]))
    return max(float(ratio[order][k]), 1e-3)


def depth_metrics(pred: np.ndarray, gt: np.ndarray, align: str = "scale", max_depth_m: float = DEFAULT_MAX_DEPTH_M,
                  protocol: Protocol | str = Protocol.REFERENCE) -> dict[str, float]:
    """{metric: value} and ``valid_pixels`` of one sequence; pred (F, H, W) float32 at GT size, gt (F, H, W) metres
    (invalid <= 0). A sequence without valid pixels gives 0 everywhere (``reference``) or NaN (``corrected``)."""
    protocol = as_protocol(protocol)
    if align not in ALIGNS:
        from tasks.evaluation.metrics.errors import MetricInputError

        raise MetricInputError(f"unknown depth alignment {align!r}: use one of {', '.join(ALIGNS)}")
    ref = protocol is Protocol.REFERENCE
    gt = np.asarray(gt, np.float64)
    pred = np.asarray(pred, np.float32)
    valid = (gt > 0) & (gt < max_depth_m) if max_depth_m is not None else gt > 0
    p32, g = pred[valid], gt[valid]
    n = int(valid.sum())
    names = DEPTH_METRICS if ref else tuple(m for m in DEPTH_METRICS if m != "delta_1")
    if n == 0:
        return {**{m: 0 if ref else math.nan for m in names}, "valid_pixels": 0}
    if align == "scale":
        if ref:
            p32 = np.float32(irls_scale(p32, g)) * p32  # float32, as torch's s * pred
        else:
            p64 = l1_scale(p32, g) * p32.astype(np.float64)
    if ref or align == "metric":
        p64 = p32.astype(np.float64)
    diff = p64 - g
    out = {"abs_rel": float(np.mean(np.abs(diff) / g)), "sq_rel": float(np.mean(diff**2 / g)),
           "rmse": float(np.sqrt(np.mean(diff**2)))}
    if ref:
        pc32 = np.maximum(p32, np.float32(1e-5))
        log_p, pc = np.log(pc32).astype(np.float64), pc32.astype(np.float64)
    else:
        pc = np.maximum(p64, 1e-5)
        log_p = np.log(pc)
    out["log_rmse"] = float(np.sqrt(np.mean((log_p - np.log(g)) ** 2)))
    ratio = np.maximum(pc / g, g / pc)
    for name, thr in (("delta_1", 1.0), ("delta_1_25", 1.25), ("delta_1_25_2", 1.25**2), ("delta_1_25_3", 1.25**3)):
        if name in names:
            frac = np.count_nonzero(ratio < thr) / n
            out[name] = float(np.float32(frac)) if ref else float(frac)
    return {**{m: out[m] for m in names}, "valid_pixels": n}


def average_depth(per_sequence: list[dict[str, float]], protocol: Protocol | str = Protocol.REFERENCE
                  ) -> dict[str, float]:
    """Valid-pixel-weighted mean of each metric over sequences. Every sequence invalid: NoValidPixelsError
    (``reference``, where numpy raises ZeroDivisionError) or NaN (``corrected``)."""
    protocol = as_protocol(protocol)
    weights = np.array([s["valid_pixels"] for s in per_sequence], np.float64)
    keys = [k for k in per_sequence[0] if k != "valid_pixels"] if per_sequence else []
    if not per_sequence or weights.sum() == 0:
        if protocol is Protocol.REFERENCE:
            raise NoValidPixelsError("no sequence has a valid depth pixel: the pixel-weighted average has no weight "
                                     "(the reference raises ZeroDivisionError)")
        return {k: math.nan for k in keys}
    return {k: float(np.average([s[k] for s in per_sequence], weights=weights)) if protocol is Protocol.REFERENCE
            else float(np.sum([s[k] * w for s, w in zip(per_sequence, weights, strict=True) if w]) / weights.sum())
            for k in keys}


def summarize_depth(benchmark: str, per_sequence: dict[str, dict[str, float]], align: str,
                    protocol: Protocol | str = Protocol.REFERENCE) -> Evaluation:
    """Rows per sequence and the weighted average (metric names as in :data:`METRICS`, e.g. ``abs_rel``)."""
    protocol = as_protocol(protocol)
    rows, exclusions = [], []
    for name, vals in per_sequence.items():
        n = vals["valid_pixels"]
        if n == 0:
            exclusions.append(Exclusion(benchmark, name, None, "no valid depth pixel (weight 0)", protocol.value))
        rows += [row(benchmark, name, m, v, n, protocol) for m, v in vals.items() if m in METRICS]
    total = int(sum(v["valid_pixels"] for v in per_sequence.values()))
    avg = average_depth(list(per_sequence.values()), protocol)
    rows += [row(benchmark, None, m, v, total, protocol) for m, v in avg.items()]
    return Evaluation(protocol.value, tuple(rows), tuple(exclusions), {"align": align})
