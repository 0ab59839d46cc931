"""One sequence's predictions against its ground truth, under one protocol: the rows of the ``evaluations`` table.

The metrics are `tasks.evaluation.metrics`' (the reference's, number for number); this module only feeds them:

* human benchmarks: each frame's predicted people (SMPL-X posed with the body model in the camera frame, converted
  to SMPL with ``smplx2smpl``, joints regressed, projected with the predicted intrinsics) and ground-truth people
  (`tasks.evaluation.groundtruth`) go through the launch loop (`evaluate_human_sequence`), the predicted camera
  poses move the matched people to the world for EMDB-2 and RICH; the rows are `summarize_humans`' per-sequence
  rows plus the sequence's detection counts (what the benchmark average is made of);
* camera benchmarks (TUM): the predicted camera-to-world poses against the ground-truth trajectory with evo;
* depth benchmarks (Bonn): the camera-frame depth maps, resized to the ground truth, under each alignment.

A sequence whose data the metrics cannot use (no person ever matched in a world benchmark, a degenerate trajectory,
an all-zero depth frame under the reference protocol) gives rows with NaN values and status ``excluded``, with
the reason: it is evaluated, and the protocol's average leaves it out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence as Seq

import numpy as np

from tasks.evaluation.benchmarks.protocol import BenchmarkProtocol, ProtocolName
from tasks.evaluation.benchmarks.sequence import Sequence
from tasks.evaluation.metrics.errors import MetricError
from tasks.evaluation.metrics.results import (
    CAMCOORD_METRICS,
    CAMERA_METRICS,
    COUNT_METRICS,
    DEPTH_METRICS,
    DETECTION_METRICS,
    METRICS,
    WORLD_METRICS,
    Evaluation,
)
from tasks.evaluation.predict import PredictedFrame


@dataclasses.dataclass(frozen=True)
class ScoredRow:
    """One metric of one sequence (what becomes an ``evaluations`` row, with the identity added)."""

    metric: str
    value: float
    count: int
    unit: str
    alignment: str | None = None  # depth: 'scale' or 'metric'
    status: str = "ok"  # 'ok' or 'excluded'
    error_type: str | None = None
    message: str | None = None


def human_metric_names(bp: BenchmarkProtocol) -> tuple[str, ...]:
    """Every metric row a human benchmark's sequence has, in the reference's order, then the counts."""
    return CAMCOORD_METRICS + (WORLD_METRICS if bp.world_metrics else ()) + DETECTION_METRICS + COUNT_METRICS


def _excluded(metrics: Seq[str], err: BaseException, alignment: str | None = None) -> list[ScoredRow]:
    message = " ".join(f"{type(err).__name__}: {err}".split())[:2000]
    return [ScoredRow(m, math.nan, 0, METRICS[m].unit, alignment, "excluded", type(err).__name__, message)
            for m in metrics]


def _rows(ev: Evaluation, sequence: str, alignment: str | None = None) -> list[ScoredRow]:
    """The sequence's rows of an Evaluation, its exclusions marked."""
    excluded = {e.metric: e.reason for e in ev.exclusions if e.sequence == sequence}
    out = []
    for r in ev.rows:
        if r.sequence != sequence:
            continue
        reason = excluded.get(r.metric, excluded.get(None))
        out.append(ScoredRow(r.metric, r.value, r.count, r.unit, alignment, "excluded" if reason else "ok",
                             None, reason))
    return out


# ------------------------------------------------------------------------------------------------------------------
# Humans
# ------------------------------------------------------------------------------------------------------------------


def _predicted_people(pred: PredictedFrame, body_model, bodies, regressor: np.ndarray):
    """(v3d_c (n, 6890, 3), j3d_c (n, J, 3), j2d (n, J, 2)) of a frame's predicted people."""
    import torch

    from tasks.evaluation.metrics.humans import project_px

    if pred.n_people == 0:
        return np.zeros((0, 6890, 3), np.float32), np.zeros((0, len(regressor), 3)), np.zeros((0, len(regressor), 2))
    posed = body_model(pred.rotmat, pred.betas, pred.expression, pred.head_cam,
                       torch.as_tensor(pred.c2w, dtype=torch.float32), with_vertices=True)
    v = bodies.to_smpl(posed.vertices_cam)
    j = np.einsum("jv,nvk->njk", regressor, v.astype(np.float64))
    return v, j, project_px(j, pred.K)


def score_humans(seq: Sequence, preds: list[PredictedFrame], bp: BenchmarkProtocol, protocol: ProtocolName,
                 body_model, bodies, working_size: int) -> list[ScoredRow]:
    """The rows of a human benchmark sequence (see the module docstring)."""
    from tasks.evaluation.groundtruth import ground_truth_people
    from tasks.evaluation.metrics.humans import HumanFrame, evaluate_human_sequence
    from tasks.evaluation.metrics.summary import summarize_humans

    gt = ground_truth_people(seq, bp, protocol, bodies, working_size)
    regressor = bodies.regressor(bp.joint_set).astype(np.float64)

    def frames():
        for pred in preds:
            f = pred.position
            rows = gt.frame(f)
            v, j, j2d = _predicted_people(pred, body_model, bodies, regressor)
            yield HumanFrame(pred_j3d_c=j, pred_v3d_c=v, pred_j2d=j2d, gt_j3d_c=gt.j3d_c[rows],
                             gt_v3d_c=gt.v3d_c[rows], gt_j2d=gt.j2d[rows], pred_c2w=pred.c2w,
                             gt_j3d_w=None if gt.j3d_w is None else gt.j3d_w[rows],
                             gt_v3d_w=None if gt.v3d_w is None else gt.v3d_w[rows],
                             frame_id=int(seq.frame_ids[f]))

    try:
        hs = evaluate_human_sequence(frames(), pelvis_idxs=bp.pelvis_joints, world=bp.world_metrics,
                                     subsample=bp.frame_stride, protocol=protocol)
    except MetricError as err:  # no match in a world benchmark, a degenerate box: the sequence's data
        return _excluded(human_metric_names(bp), err)
    ev = summarize_humans(bp.name, {seq.name: hs}, world=bp.world_metrics, protocol=protocol)
    counts = dict(zip(COUNT_METRICS, (hs.counter["count"], hs.counter["n_human"], hs.counter["miss"],
                                      hs.counter["fp"]), strict=True))
    return _rows(ev, seq.name) + [ScoredRow(m, float(v), int(v), "count") for m, v in counts.items()]


# ------------------------------------------------------------------------------------------------------------------
# Camera poses
# ------------------------------------------------------------------------------------------------------------------


def score_camera(seq: Sequence, preds: list[PredictedFrame], bp: BenchmarkProtocol,
                 protocol: ProtocolName) -> list[ScoredRow]:
    """ATE, RPE-trans, RPE-rot of the predicted trajectory (evo, Sim(3)-aligned), as the reference's relpose."""
    from evo.core.geometry import GeometryException
    from evo.core.sync import SyncException
    from evo.core.trajectory import PoseTrajectory3D

    from tasks.evaluation.metrics.camera import c2w_to_tum_wxyz, evaluate_trajectory, summarize_trajectories

    traj = seq.trajectory
    gt = PoseTrajectory3D(positions_xyz=np.asarray(traj.xyz, np.float64),
                          orientations_quat_wxyz=np.asarray(traj.quat_wxyz, np.float64),
                          timestamps=np.asarray(traj.stamps, np.float64))
    tum = c2w_to_tum_wxyz(np.stack([p.c2w for p in preds]).astype(np.float32))  # the reference saves float32 poses
    try:
        result = evaluate_trajectory(tum, np.arange(len(tum), dtype=np.float64), gt, seq.name, protocol)
    except (MetricError, SyncException, GeometryException, np.linalg.LinAlgError) as err:
        return _excluded(CAMERA_METRICS, err)
    return _rows(summarize_trajectories(bp.name, {seq.name: result}, protocol), seq.name)


# ------------------------------------------------------------------------------------------------------------------
# Video depth
# ------------------------------------------------------------------------------------------------------------------


def score_depth(seq: Sequence, preds: list[PredictedFrame], bp: BenchmarkProtocol,
                protocol: ProtocolName) -> list[ScoredRow]:
    """Depth metrics of the camera-frame depth maps, per alignment (Bonn: 'scale' and 'metric')."""
    from tasks.evaluation.metrics.bonn import read_bonn_depth
    from tasks.evaluation.metrics.depth import depth_metrics, resize_bicubic, summarize_depth

    names = DEPTH_METRICS if protocol == "reference" else tuple(m for m in DEPTH_METRICS if m != "delta_1")
    try:
        gt = np.stack([read_bonn_depth(p, protocol) for p in seq.depths])
    except MetricError as err:  # an all-zero PNG under the reference protocol
        return [r for align in bp.depth_alignments for r in _excluded(names, err, align)]
    h, w = gt.shape[1:]
    pred = np.stack([resize_bicubic(p.depth, h, w) for p in preds])
    out = []
    for align in bp.depth_alignments:
        values = depth_metrics(pred, gt, align, bp.depth_max_m, protocol)
        out += _rows(summarize_depth(bp.name, {seq.name: values}, align, protocol), seq.name, align)
    return out


def score(seq: Sequence, preds: list[PredictedFrame], bp: BenchmarkProtocol, protocol: ProtocolName, *,
          body_model=None, bodies=None, working_size: int = 512) -> list[ScoredRow]:
    """The rows of `seq` under `protocol` for its benchmark's kind."""
    if bp.kind == "human":
        return score_humans(seq, preds, bp, protocol, body_model, bodies, working_size)
    if bp.kind == "camera":
        return score_camera(seq, preds, bp, protocol)
    return score_depth(seq, preds, bp, protocol)
