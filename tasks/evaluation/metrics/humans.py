"""One human benchmark sequence through the reference's launch loop: match, camera-frame metrics, world metrics.

Per frame: the predicted people's 2D joints (projected with the *predicted* intrinsics) are matched to the GT's
(:func:`~tasks.evaluation.metrics.matching.match_2d_greedy`); counts of GT, misses and false positives accumulate;
the matched pairs give the camera-frame metrics; on world-frame benchmarks (EMDB-2, RICH) the matched predictions,
moved to the world by the *predicted* camera pose, are gathered with the GT's world joints, and after the last frame
the world metrics run on those gathered frames (:func:`~tasks.evaluation.metrics.world.eval_global`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tasks.evaluation.metrics.camcoord import PELVIS_SMPL24, eval_camcoord
from tasks.evaluation.metrics.errors import MetricInputError, NoMatchedFramesError
from tasks.evaluation.metrics.matching import match_2d_greedy
from tasks.evaluation.metrics.protocol import Protocol, as_protocol
from tasks.evaluation.metrics.world import SMPL_VERTICES, eval_global, feet_of


@dataclass(frozen=True)
class HumanFrame:
    """One frame's predicted and GT people. P, G people; J joints; V vertices (6890, or the 4 foot vertices)."""

    pred_j3d_c: np.ndarray  # (P, J, 3) predicted joints, camera frame, metres
    pred_v3d_c: np.ndarray  # (P, V, 3) predicted vertices, camera frame, metres
    pred_j2d: np.ndarray  # (P, J, 2) predicted joints projected with the predicted intrinsics, pixels
    gt_j3d_c: np.ndarray  # (G, J, 3) GT joints, camera frame, metres
    gt_v3d_c: np.ndarray  # (G, V, 3) GT vertices, camera frame, metres
    gt_j2d: np.ndarray  # (G, J, 2) GT joints projected with the GT intrinsics, pixels
    pred_c2w: np.ndarray | None = None  # (4, 4) predicted camera-to-world pose (world benchmarks)
    gt_j3d_w: np.ndarray | None = None  # (G, J, 3) GT joints, world frame, metres (world benchmarks)
    gt_v3d_w: np.ndarray | None = None  # (G, V, 3) GT vertices, world frame, metres (world benchmarks)
    frame_id: int | None = None  # the frame's number in the sequence (default: its position)


@dataclass
class HumanSequence:
    """What one sequence gives: counts and every metric's entries, keyed as the reference."""

    counter: Counter = field(default_factory=Counter)  # count (GT people), miss, fp, n_human (matches)
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)  # ref key -> per-frame/-sequence arrays
    frames_in_world: int = 0  # matched frames that entered the world metrics

    def entries(self, key: str) -> np.ndarray:
        """All entries of a reference key, concatenated (empty when none)."""
        parts = self.values.get(key, [])
        return np.concatenate([np.ravel(p) for p in parts]) if parts else np.zeros(0)


def project_px(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(N, J, 2) pixels of (N, J, 3) camera-frame points through intrinsics K (3, 3): K (x / z)."""
    points = np.asarray(points, np.float64)
    y = points / points[..., 2:3]
    return np.einsum("ij,nkj->nki", np.asarray(k, np.float64), y)[..., :2]


def _to_world(c2w: np.ndarray, points: np.ndarray) -> np.ndarray:
    c2w = np.asarray(c2w, np.float64)
    return np.einsum("ij,...j->...i", c2w[:3, :3], np.asarray(points, np.float64)) + c2w[:3, 3]


def _feet(v: np.ndarray) -> np.ndarray:
    if v.shape[-2] == 4:
        return v
    if v.shape[-2] != SMPL_VERTICES:
        raise MetricInputError(f"world metrics need SMPL vertices (..., {SMPL_VERTICES}, 3) or the 4 foot vertices, "
                               f"got {v.shape}")
    return feet_of(v)


def evaluate_human_sequence(frames: list[HumanFrame], pelvis_idxs: tuple[int, ...] = PELVIS_SMPL24,
                            world: bool = False, subsample: int = 1,
                            protocol: Protocol | str = Protocol.REFERENCE) -> HumanSequence:
    """Match, then camera-frame metrics per matched person-frame and, when `world`, the world metrics."""
    protocol = as_protocol(protocol)
    seq = HumanSequence()
    gathered: dict[str, list[np.ndarray]] = {"pred_j": [], "gt_j": [], "pred_feet": [], "gt_feet": [], "ids": []}
    for pos, fr in enumerate(frames):
        gt_j2d = np.asarray(fr.gt_j2d)
        n_gt = len(gt_j2d)
        m = match_2d_greedy(np.asarray(fr.pred_j2d)[:, :gt_j2d.shape[1]], gt_j2d, protocol=protocol)
        seq.counter.update({"count": n_gt, "miss": len(m.misses), "fp": len(m.false_positives)})
        if not len(m.matches):
            continue
        seq.counter.update({"n_human": len(m.matches)})
        pid, gid = m.matches[:, 0], m.matches[:, 1]
        for k, v in eval_camcoord(fr.pred_j3d_c[pid], fr.gt_j3d_c[gid], fr.pred_v3d_c[pid], fr.gt_v3d_c[gid],
                                  pelvis_idxs).items():
            seq.values.setdefault(k, []).append(v)
        if world:
            if fr.pred_c2w is None or fr.gt_j3d_w is None or fr.gt_v3d_w is None:
                raise MetricInputError("world metrics need pred_c2w, gt_j3d_w and gt_v3d_w on every frame")
            gathered["pred_j"].append(_to_world(fr.pred_c2w, fr.pred_j3d_c[pid]))
            gathered["gt_j"].append(np.asarray(fr.gt_j3d_w, np.float64)[gid])
            gathered["pred_feet"].append(_to_world(fr.pred_c2w, _feet(np.asarray(fr.pred_v3d_c)[pid])))
            gathered["gt_feet"].append(_feet(np.asarray(fr.gt_v3d_w, np.float64)[gid]))
            gathered["ids"].append(np.full(len(pid), pos if fr.frame_id is None else fr.frame_id))
    if world:
        if not gathered["pred_j"]:
            raise NoMatchedFramesError("no person was matched in any frame: the world metrics have no input "
                                       "(the reference crashes here)")
        batch = {k: np.concatenate(v) for k, v in gathered.items()}
        seq.frames_in_world = len(batch["ids"])
        for k, v in eval_global(batch["pred_j"], batch["gt_j"], batch["pred_feet"], batch["gt_feet"],
                                frame_ids=batch["ids"], subsample=subsample, protocol=protocol).items():
            seq.values.setdefault(k, []).append(v)
    return seq
