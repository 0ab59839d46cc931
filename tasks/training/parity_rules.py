"""The tolerances of a training parity pack (its README §5, as `compare_to_fixture.py` applies them), rewritten as
functions that give, per quantity, the worst error against its tolerance (`ratio` <= 1 passes).

Rules (`|a - b| <= atol + rtol |b|` elementwise unless stated; b = the pack's value):
  exact: integer / bool arrays, gt.msk_mhmr, gt.smpl_scores, the trainable name lists
  batch.img / msk / depthmap atol 1e-6; other batch.*, gt.* floats atol 1e-5 rtol 1e-5 (gt.smpl_j2d atol 1e-3 px)
  pred.msk, pred.smpl_scores, tok.mhmr_token atol 1e-5 rtol 1e-5; pred.smpl_loc, tok.mhmr_loc atol 1e-4 px
  other pred.*, tok.*, pred_smpl.* atol 1e-3 rtol 1e-3 (pred_smpl.smpl_j2d atol 1e-2 px)
  loss.norm_factor_gt rtol 1e-5; loss scalars atol 1e-6 rtol 2e-5; grad norms and clip coefficient rtol 5e-5
  grad.* per tensor ||a - b|| <= 2e-4 ||b|| and |a - b| <= 1e-4 max|b| + 1e-3 |b|; an exactly-zero fixture
    gradient must be exactly zero
  param_after.* together: |a - b| <= 2.5e-4 everywhere and <= 1e-6 for all but 0.02 % of the elements
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EXACT_FLOAT = {"gt.msk_mhmr", "gt.smpl_scores"}
LOSS_SCALARS = (1e-6, 2e-5)  # atol, rtol
NORM_SCALARS = (0.0, 5e-5)
GRAD_NORM_REL, GRAD_ELEMENT_MAX, GRAD_ELEMENT_REL = 2e-4, 1e-4, 1e-3
PARAM_MAX_ABS, PARAM_SMALL, PARAM_OUTLIER_FRACTION = 2.5e-4, 1e-6, 2e-4


@dataclass
class Check:
    """One quantity (e.g. `pred.pts3d_in_self_view` over every view) against its tolerance."""

    quantity: str
    tolerance: str
    worst: float = 0.0  # the worst error in the rule's own unit (max |diff|, relative norm, ...)
    ratio: float = 0.0  # worst error / tolerance; <= 1 passes
    count: int = 0  # arrays or scalars compared
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.ratio <= 1.0

    def fail(self, message: str) -> None:
        self.problems.append(message)


def array_rule(key: str) -> tuple[str, float, float]:
    """("exact" | "close" | "grad" | "param", atol, rtol) for a fixture array key (`group.v<i>.<name>` or
    `group.<name>`)."""
    top, name = key.split(".")[0], key.split(".")[-1]
    if key.startswith("loss.norm_factor_gt"):
        return "close", 0.0, 1e-5
    if top == "batch":
        return ("close", 1e-6, 0.0) if name in ("img", "msk", "depthmap") else ("close", 1e-5, 1e-5)
    if top == "gt":
        if f"gt.{name}" in EXACT_FLOAT:
            return "exact", 0.0, 0.0
        return "close", 1e-3 if name == "smpl_j2d" else 1e-5, 1e-5
    if top in ("pred", "tok", "pred_smpl"):
        if name in ("msk", "smpl_scores", "mhmr_token"):
            return "close", 1e-5, 1e-5
        if name in ("smpl_loc", "mhmr_loc"):
            return "close", 1e-4, 0.0
        if name == "smpl_j2d":
            return "close", 1e-2, 1e-3
        return "close", 1e-3, 1e-3
    if top == "grad":
        return "grad", 0.0, 0.0
    if top == "param_after":
        return "param", 0.0, 0.0
    return "close", 1e-5, 1e-5


def quantity(key: str) -> str:
    """The row a key is reported under: the key without its view index (`pred.v2.rgb` -> `pred.rgb`); gradients
    and parameters as one row each."""
    parts = key.split(".")
    if parts[0] in ("grad", "param_after"):
        return parts[0]
    if len(parts) >= 3 and parts[1].startswith("v") and parts[1][1:].isdigit():
        return ".".join([parts[0], *parts[2:]])
    return key


def describe(rule: tuple[str, float, float]) -> str:
    kind, atol, rtol = rule
    if kind == "exact":
        return "exact"
    if kind == "grad":
        return "||d|| <= 2e-4 ||g||, |d| <= 1e-4 max|g| + 1e-3 |g|"
    if kind == "param":
        return "|d| <= 2.5e-4; <= 1e-6 but 0.02 %"
    return f"atol {atol:g}, rtol {rtol:g}"


def compare_array(check: Check, key: str, got: np.ndarray, exp: np.ndarray) -> None:
    """Fold one array into `check` by its rule (`param_after` is folded by `compare_params` instead)."""
    kind, atol, rtol = array_rule(key)
    check.count += 1
    if got.shape != exp.shape:
        check.fail(f"{key}: shape {got.shape} vs {exp.shape}")
        return
    if exp.dtype.kind in "biu" or kind == "exact":
        check.tolerance = "exact"
        if not np.array_equal(got, exp):
            check.fail(f"{key}: {int((got != exp).sum())} elements differ (exact)")
            check.ratio = math.inf
        return
    a, b = got.astype(np.float64), exp.astype(np.float64)
    d = np.abs(a - b)
    if kind == "close":
        if d.size:
            check.worst = max(check.worst, float(d.max()))
            check.ratio = max(check.ratio, _ratio(d, atol + rtol * np.abs(b)))
    elif kind == "grad":
        nb = float(np.linalg.norm(b))
        if nb == 0:
            if np.any(a != 0):
                check.fail(f"{key}: the fixture gradient is exactly zero, this one is not (max {float(d.max()):.3g})")
            return
        rel = float(np.linalg.norm(a - b)) / nb
        elem = _ratio(d, GRAD_ELEMENT_MAX * np.abs(b).max() + GRAD_ELEMENT_REL * np.abs(b))
        check.worst = max(check.worst, rel)
        check.ratio = max(check.ratio, rel / GRAD_NORM_REL, elem)


def _ratio(d: np.ndarray, tol: np.ndarray | float) -> float:
    """max d / tol, where 0 / 0 counts as 0 and x / 0 as infinity."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d == 0, 0.0, d / tol)
    return float(r.max()) if r.size else 0.0


def compare_params(check: Check, diffs: list[np.ndarray]) -> None:
    """All `param_after.*` together: the largest difference and the count above 1e-6 against their bounds."""
    if not diffs:
        return
    d = np.concatenate([x.ravel() for x in diffs])
    n_big = int((d > PARAM_SMALL).sum())
    allowed = int(PARAM_OUTLIER_FRACTION * d.size)
    check.worst = float(d.max())
    check.ratio = max(check.worst / PARAM_MAX_ABS, n_big / max(allowed, 1))
    check.tolerance = f"|d| <= 2.5e-4; {n_big} of {d.size} > 1e-6 (allowed {allowed})"


def compare_scalar(check: Check, name: str, got: float, exp: float, atol: float, rtol: float) -> None:
    check.count += 1
    d = abs(got - exp)
    if not math.isfinite(got):
        check.fail(f"{name}: {got}")
        return
    check.worst = max(check.worst, d)
    check.ratio = max(check.ratio, _ratio(np.array([d]), atol + rtol * abs(exp)))
