"""Camera pose metrics with evo: ATE, RPE-trans, RPE-rot (the reference's ``evo_utils.eval_metrics``).

* ATE (m): evo APE on the translation part after one Sim3 Umeyama alignment (pred -> GT); the RMSE.
* RPE-rot (deg), RPE-trans (m): evo RPE over consecutive frame pairs (delta 1 frame, all pairs) of the aligned
  prediction; the RMSE.

Predictions are camera-to-world poses; their stamps are frame numbers (``pred_traj.txt`` as the reference writes it:
``t x y z qw qx qy qz``, quaternion **w first**). ``reference``: when the prediction has as many poses as the GT it
takes the GT's stamps, otherwise it keeps frame numbers and evo's association finds nothing (SyncException).
``corrected``: the frame numbers index the GT rows, so a prediction missing a pose is evaluated on the others.
The dataset value is the plain mean over sequences: ``reference`` of the 6-decimal values parsed back from evo's
report, a sequence whose alignment fails ("Degenerate covariance rank", a static camera) silently missing;
``corrected`` of the full values, the failed sequence reported.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.evaluation.metrics.errors import MetricInputError
from tasks.evaluation.metrics.protocol import Protocol, as_protocol
from tasks.evaluation.metrics.results import CAMERA_METRICS, Evaluation, Exclusion, row

MAX_STAMP_DIFF_S = 0.01  # evo association tolerance
REPORT_SUFFIX = "_eval_metric.txt"


@dataclass(frozen=True)
class TrajectoryMetrics:
    ate_m: float
    rpe_trans_m: float
    rpe_rot_deg: float
    pairs: int  # associated poses
    report: str  # evo's report as the reference writes it (<seq>_eval_metric.txt)


def c2w_to_tum_wxyz(c2w: np.ndarray) -> np.ndarray:
    """(N, 7) ``x y z qw qx qy qz`` rows of camera-to-world poses (N, 4, 4), via scipy, as the reference does."""
    from scipy.spatial.transform import Rotation

    c2w = np.asarray(c2w)
    quat = Rotation.from_matrix(c2w[:, :3, :3]).as_quat()  # x y z w
    return np.concatenate([c2w[:, :3, 3].astype(np.float64), quat[:, [3, 0, 1, 2]]], axis=1)


def write_pred_traj(path: str | Path, tum_wxyz: np.ndarray, stamps: np.ndarray | None = None) -> None:
    """Write ``pred_traj.txt`` as the reference's ``save_tum_poses`` (stamps = frame numbers, ``str`` of floats)."""
    stamps = np.arange(len(tum_wxyz), dtype=float) if stamps is None else np.asarray(stamps, float)
    lines = [" ".join(map(str, [float(t), *map(float, r)])) for t, r in zip(stamps, tum_wxyz, strict=True)]
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_pred_traj(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(stamps (N,), rows (N, 7) ``x y z qw qx qy qz``) of a reference ``pred_traj.txt`` (w-first quaternions)."""
    try:
        data = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as err:
        raise MetricInputError(f"cannot read the predicted trajectory {path}: {err}") from err
    if data.shape[1] != 8:
        raise MetricInputError(f"{path}: expected 8 columns 't x y z qw qx qy qz', got {data.shape[1]}")
    return data[:, 0], data[:, 1:]


def read_gt_tum(path: str | Path):
    """The GT trajectory of a TUM file (``t tx ty tz qx qy qz qw``), re-made from its positions and quaternions
    as the reference's ``load_traj``/``make_traj`` do. Returns an evo PoseTrajectory3D."""
    from evo.core.trajectory import PoseTrajectory3D
    from evo.tools import file_interface

    try:
        traj = file_interface.read_tum_trajectory_file(str(path))
    except Exception as err:  # evo raises its FileInterfaceException or OSError
        raise MetricInputError(f"cannot read the GT trajectory {path}: {err}") from err
    return PoseTrajectory3D(positions_xyz=traj.positions_xyz, orientations_quat_wxyz=traj.orientations_quat_wxyz,
                            timestamps=traj.timestamps)


def evaluate_trajectory(pred_wxyz: np.ndarray, pred_stamps: np.ndarray, gt, name: str = "",
                        protocol: Protocol | str = Protocol.REFERENCE) -> TrajectoryMetrics:
    """ATE, RPE-trans, RPE-rot of predicted poses (N, 7) ``x y z qw qx qy qz`` against an evo GT trajectory.

    `pred_stamps` are frame numbers (0..N-1 as the reference writes them). Raises evo's SyncException when no
    stamps associate and its GeometryException ("Degenerate covariance rank") when the alignment is undefined.
    """
    from evo import main_ape, main_rpe
    from evo.core import sync
    from evo.core.metrics import PoseRelation, Unit
    from evo.core.trajectory import PoseTrajectory3D

    protocol = as_protocol(protocol)
    pred_wxyz = np.asarray(pred_wxyz, np.float64)
    stamps = np.asarray(pred_stamps, np.float64)
    gt = copy.deepcopy(gt)
    if protocol is Protocol.REFERENCE:
        if len(stamps) == len(gt.timestamps):
            stamps = gt.timestamps
    else:
        idx = np.rint(stamps).astype(np.int64)
        keep = (idx >= 0) & (idx < len(gt.timestamps)) & (np.abs(stamps - idx) < 1e-6)
        pred_wxyz, stamps = pred_wxyz[keep], gt.timestamps[idx[keep]]
    est = PoseTrajectory3D(positions_xyz=pred_wxyz[:, :3], orientations_quat_wxyz=pred_wxyz[:, 3:],
                           timestamps=np.array(stamps, np.float64))
    ref, est = sync.associate_trajectories(gt, est, max_diff=MAX_STAMP_DIFF_S)
    # the same calls, in the same order, as the reference: ape aligns `est` in place, each rpe realigns it
    ate = main_ape.ape(ref, est, pose_relation=PoseRelation.translation_part, align=True, correct_scale=True)
    rpe_kw = dict(align=True, correct_scale=True, delta=1, delta_unit=Unit.frames, rel_delta_tol=0.01, all_pairs=True)
    rot = main_rpe.rpe(ref, est, pose_relation=PoseRelation.rotation_angle_deg, **rpe_kw)
    trans = main_rpe.rpe(ref, est, pose_relation=PoseRelation.translation_part, **rpe_kw)
    report = f"Seq: {name} \n\n{ate}{rot}{trans}"
    return TrajectoryMetrics(float(ate.stats["rmse"]), float(trans.stats["rmse"]), float(rot.stats["rmse"]),
                             int(ref.num_poses), report)


_REPORT = {
    "ate_m": r"APE w.r.t. translation part \(m\).*?rmse\s+([0-9.]+)",
    "rpe_trans_m": r"RPE w.r.t. translation part \(m\).*?rmse\s+([0-9.]+)",
    "rpe_rot_deg": r"RPE w.r.t. rotation angle in degrees \(deg\).*?rmse\s+([0-9.]+)",
}


def parse_report(text: str) -> dict[str, float]:
    """The three RMSEs of an evo report as the reference parses them back (6 decimals; 0.0 when absent)."""
    out = {}
    for metric, pattern in _REPORT.items():
        m = re.search(pattern, text, re.DOTALL)
        out[metric] = float(m.group(1)) if m else 0.0
    return out


def summarize_trajectories(benchmark: str, results: dict[str, TrajectoryMetrics | BaseException],
                           protocol: Protocol | str = Protocol.REFERENCE) -> Evaluation:
    """Rows per sequence and the plain mean over sequences; a failed sequence is an exception in `results`."""
    protocol = as_protocol(protocol)
    rows, exclusions = [], []
    per_seq: dict[str, dict[str, float]] = {}
    for name, res in results.items():
        if isinstance(res, BaseException):
            exclusions.append(Exclusion(benchmark, name, None, f"{type(res).__name__}: {res}".strip(), protocol.value))
            if protocol is Protocol.CORRECTED:
                rows += [row(benchmark, name, m, math.nan, 0, protocol) for m in CAMERA_METRICS]
            continue
        vals = parse_report(res.report) if protocol is Protocol.REFERENCE else {
            "ate_m": res.ate_m, "rpe_trans_m": res.rpe_trans_m, "rpe_rot_deg": res.rpe_rot_deg}
        per_seq[name] = vals
        counts = {"ate_m": res.pairs, "rpe_trans_m": res.pairs - 1, "rpe_rot_deg": res.pairs - 1}
        rows += [row(benchmark, name, m, getattr(res, m), counts[m], protocol) for m in CAMERA_METRICS]
    for m in CAMERA_METRICS:
        vals = [v[m] for v in per_seq.values()]
        rows.append(row(benchmark, None, m, sum(vals) / len(vals) if vals else 0.0 if protocol is Protocol.REFERENCE
                        else math.nan, len(vals), protocol))
    reports = {f"{n}{REPORT_SUFFIX}": r.report for n, r in results.items() if not isinstance(r, BaseException)}
    return Evaluation(protocol.value, tuple(rows), tuple(exclusions), reports)
