"""Detection: the greedy 2D matcher of predictions to GT people, its box IoU, and precision/recall/F1.

From ROMP's evaluation code, as Human3R uses it. The cost of a (prediction, GT) pair is the **spectral norm**
(largest singular value) of the J x 2 joint difference, not a joint distance; boxes are the joints' min/max with the
"+1 pixel" IoU convention. Pairs are listed in (prediction, GT) product order and looked at cheapest first (ties to
the earlier pair); a pair is accepted when both sides are free and IoU >= 0.05.

Under ``reference`` a looked-at pair with IoU < 0.05 adds one to a false-positive counter and ends the step, and the
loop runs while (#matched GT < #GT) and (#matched predictions + counter < #predictions): a low-IoU pair of an already
matched prediction can stop the loop before a valid pair is seen (the pack's ``quirk``). ``corrected`` looks at every
pair. Both report false positives = unmatched predictions, misses = unmatched GT.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from tasks.evaluation.metrics.errors import DegenerateBoxError, MatcherStalledError
from tasks.evaluation.metrics.protocol import Protocol, as_protocol

IOU_THRESHOLD = 0.05


@dataclass(frozen=True)
class Matching:
    matches: np.ndarray  # (M, 2) int (prediction index, GT index), in acceptance order
    false_positives: np.ndarray  # (P - M,) unmatched prediction indices, sorted
    misses: np.ndarray  # (G - M,) unmatched GT indices, sorted


def box_iou(p1: np.ndarray, p2: np.ndarray) -> float:
    """IoU of the joints' boxes of two (J, 2) pixel arrays, "+1 pixel" convention (width = x2 - x1 + 1).

    Raises DegenerateBoxError when a box has zero width or height (the reference asserts).
    """
    lo1, hi1 = np.min(p1, axis=0), np.max(p1, axis=0)
    lo2, hi2 = np.min(p2, axis=0), np.max(p2, axis=0)
    if not (lo1[0] < hi1[0] and lo1[1] < hi1[1] and lo2[0] < hi2[0] and lo2[1] < hi2[1]):
        raise DegenerateBoxError(f"a 2D joint box has zero width or height: {lo1.tolist()}-{hi1.tolist()} vs "
                                 f"{lo2.tolist()}-{hi2.tolist()}")
    inter_w = max(0, min(hi1[0], hi2[0]) - max(lo1[0], lo2[0]) + 1)
    inter = inter_w * max(0, min(hi1[1], hi2[1]) - max(lo1[1], lo2[1]) + 1)
    a1 = (hi1[0] - lo1[0] + 1) * (hi1[1] - lo1[1] + 1)
    a2 = (hi2[0] - lo2[0] + 1) * (hi2[1] - lo2[1] + 1)
    return float(inter) / float(a1 + a2 - inter)  # areas in the joints' dtype, the ratio in float64


def pair_cost_px(pred: np.ndarray, gt: np.ndarray) -> float:
    """Spectral norm (largest singular value) of the (J, 2) difference of two people's 2D joints, pixels."""
    return float(np.linalg.norm(np.asarray(pred)[:, :2] - np.asarray(gt)[:, :2], 2))


def match_2d_greedy(pred_j2d: np.ndarray, gt_j2d: np.ndarray, iou_threshold: float = IOU_THRESHOLD,
                    protocol: Protocol | str = Protocol.REFERENCE) -> Matching:
    """Match P predicted people (P, J, 2) to G GT people (G, J, 2), pixels (see the module docstring)."""
    protocol = as_protocol(protocol)
    n_pred, n_gt = len(pred_j2d), len(gt_j2d)
    combs = list(product(range(n_pred), range(n_gt)))
    costs = np.array([pair_cost_px(pred_j2d[p], gt_j2d[g]) for p, g in combs], dtype=np.float64)
    pred_taken = np.zeros(n_pred, bool)
    gt_taken = np.zeros(n_gt, bool)
    matches: list[tuple[int, int]] = []
    if protocol is Protocol.REFERENCE:
        fp_counter = 0
        while gt_taken.sum() < n_gt and pred_taken.sum() + fp_counter < n_pred:
            while True:  # one step: the cheapest pairs until a match or a low-IoU pair
                if np.all(np.isinf(costs)):
                    raise MatcherStalledError("the reference matcher has looked at every pair and would loop forever")
                i = int(np.argmin(costs))
                costs[i] = np.inf
                p, g = combs[i]
                iou = box_iou(pred_j2d[p], gt_j2d[g])
                if not pred_taken[p] and not gt_taken[g] and iou >= iou_threshold:
                    matches.append((p, g))
                    pred_taken[p] = gt_taken[g] = True
                    break
                if iou < iou_threshold:
                    fp_counter += 1
                    break
    else:
        for i in np.argsort(costs, kind="stable"):
            if pred_taken.all() or gt_taken.all():
                break
            p, g = combs[i]
            if pred_taken[p] or gt_taken[g]:
                continue
            if box_iou(pred_j2d[p], gt_j2d[g]) >= iou_threshold:
                matches.append((p, g))
                pred_taken[p] = gt_taken[g] = True
    m = np.array(matches, dtype=np.int64).reshape(-1, 2)
    return Matching(m, np.setdiff1d(np.arange(n_pred), m[:, 0]), np.setdiff1d(np.arange(n_gt), m[:, 1]))


def prf1_pct(count: int, miss: int, fp: int, protocol: Protocol | str = Protocol.REFERENCE) -> tuple[float, ...]:
    """(precision, recall, F1) in % from #GT people, #misses and #false positives (tp = count - miss).

    ``reference``: each fraction rounded to 2 decimals, then x100 (whole percents with float noise, e.g.
    56.99999999999999); count = 0 gives (0, 0, 0), tp = 0 gives (0., 0., 0.). ``corrected``: unrounded; NaN where
    a fraction is 0/0.
    """
    protocol = as_protocol(protocol)
    tp = count - miss
    if protocol is Protocol.REFERENCE:
        if count == 0:
            return 0, 0, 0
        if tp == 0:
            return 0.0, 0.0, 0.0
        f1 = round(tp / (tp + 0.5 * (fp + miss)), 2)
        recall = round(tp / (tp + miss), 2)
        precision = round(tp / (tp + fp), 2)
        return 100.0 * precision, 100.0 * recall, 100.0 * f1

    def frac(a: float, b: float) -> float:
        return 100.0 * a / b if b else float("nan")

    return frac(tp, tp + fp), frac(tp, tp + miss), frac(tp, tp + 0.5 * (fp + miss))
