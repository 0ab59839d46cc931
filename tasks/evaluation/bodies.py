"""Bodies for the human benchmarks: the ground truth posed with its own body model, the prediction converted to SMPL.

The reference (``src/dust3r/smpl_model.py``) poses the ground truth with the gendered SMPL (3DPW, EMDB) or the
gendered SMPL-X with 12 hand PCA components at 0 (RICH, then ``smplx2smpl``), and turns every predicted SMPL-X mesh
into SMPL vertices with ``smplx2smpl`` before regressing the benchmark's joints (SMPL ``J_regressor`` or 3DPW's 14
H36M rows) from the vertices. :class:`EvalBodies` holds those files, loaded once; the posing is smplx's own
linear blend skinning (``smplx.lbs.lbs``) on the arrays of the SMPL files, which the restricted unpickler reads
without chumpy.

Shapes: N people; V = 6890 SMPL vertices; J joints (24 or 14). Metres, float32 as the reference computes.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from tasks.evaluation.benchmarks.errors import ConversionFileError
from tasks.evaluation.benchmarks.protocol import BenchmarkProtocol
from tasks.evaluation.benchmarks.sequence import GENDER_IDS
from tasks.evaluation.benchmarks.smpl_files import (
    GET_FILES,
    SMPL_MODEL_NAMES,
    SmplConversion,
    SmplModel,
    find_smpl_file,
    load_smpl_conversion,
    load_smpl_model,
    resolve_smpl_folder,
)
from tasks.evaluation.identity import SMPLX_GENDERED

NUM_POSE_BASIS = 207  # SMPL: 23 joints x 9 rotation-matrix entries


def _torch():
    import torch

    return torch


def pose_smpl(model: SmplModel, global_orient: np.ndarray, body_pose: np.ndarray, betas: np.ndarray,
              transl: np.ndarray) -> np.ndarray:
    """SMPL vertices (N, 6890, 3) float32 of N bodies: global_orient (N, 3), body_pose (N, 23, 3) or (N, 69)
    axis-angle radians, betas (N, 10), transl (N, 3) metres (smplx ``SMPL.forward``: LBS, then + transl)."""
    torch = _torch()
    from smplx.lbs import lbs

    a = model.arrays
    if "posedirs" not in a or "weights" not in a or "kintree_table" not in a:
        missing = [k for k in ("posedirs", "weights", "kintree_table") if k not in a]
        raise ConversionFileError(f"SMPL model {model.path} lacks {missing}: it cannot pose a body; {GET_FILES}")
    n = len(global_orient)
    if n == 0:
        return np.zeros((0, a["v_template"].shape[0], 3), np.float32)
    f32 = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    parents = torch.as_tensor(a["kintree_table"][0].astype(np.int64))
    parents[0] = -1
    pose = torch.cat([f32(global_orient).reshape(n, 3), f32(body_pose).reshape(n, 69)], dim=1)
    n_betas = np.asarray(betas).shape[-1]
    posedirs = f32(np.reshape(a["posedirs"], (-1, NUM_POSE_BASIS)).T)
    with torch.no_grad():
        verts, _ = lbs(f32(betas).reshape(n, n_betas), pose, f32(a["v_template"]), f32(a["shapedirs"][:, :, :n_betas]),
                       posedirs, f32(a["J_regressor"]), parents, f32(a["weights"]))
        verts = verts + f32(transl).reshape(n, 1, 3)
    return verts.numpy()


@dataclasses.dataclass(frozen=True)
class EvalBodies:
    """The SMPL files one human benchmark needs, loaded once (per Ray actor, per command)."""

    folder: Path
    conversion: SmplConversion  # smplx2smpl, the 24-joint and H36M regressors
    smpl: dict[int, SmplModel]  # gender id (0 neutral, 1 male, 2 female) -> SMPL model
    smplx_gt: dict[int, object]  # gender id -> smplx.SMPLX layer with 12 hand PCA components (RICH); may be empty

    def regressor(self, joint_set: str) -> np.ndarray:
        """(J, 6890) float32 joint regressor of the benchmark's joint set (``smpl24`` or ``h36m14``)."""
        return self.conversion.regressor(joint_set)

    def to_smpl(self, smplx_vertices) -> np.ndarray:
        """SMPL-X vertices (N, 10475, 3) -> SMPL vertices (N, 6890, 3) float32 (``smplx2smpl @ v``)."""
        return self.conversion.to_smpl(smplx_vertices).numpy()

    def pose_gt(self, model: str, gender: np.ndarray, global_orient: np.ndarray, body_pose: np.ndarray,
                betas: np.ndarray, transl: np.ndarray) -> np.ndarray:
        """Ground-truth SMPL vertices (N, 6890, 3) float32 of N bodies, each posed with the model of its gender id
        (`gender` (N,)): SMPL parameters directly (body_pose (N, 23, 3)), SMPL-X ones (body_pose (N, 21, 3)) with
        hands at the 12-component PCA mean, jaw, eyes and expression at 0, then converted with ``smplx2smpl``."""
        gender = np.asarray(gender, np.int64)
        out = np.zeros((len(gender), 6890, 3), np.float32)
        for g in np.unique(gender):
            rows = np.nonzero(gender == g)[0]
            if model == "smpl":
                out[rows] = pose_smpl(self._smpl(int(g)), global_orient[rows], body_pose[rows], betas[rows],
                                      transl[rows])
            else:
                out[rows] = self.to_smpl(self._pose_smplx(int(g), global_orient[rows], body_pose[rows], betas[rows],
                                                          transl[rows]))
        return out

    def _smpl(self, gender: int) -> SmplModel:
        if gender not in self.smpl:
            name = {v: k for k, v in GENDER_IDS.items()}.get(gender, str(gender))
            raise ConversionFileError(f"{self.folder} lacks the SMPL {name} model "
                                      f"({' or '.join(SMPL_MODEL_NAMES.get(name, ('?',)))}): {GET_FILES}")
        return self.smpl[gender]

    def _pose_smplx(self, gender: int, global_orient, body_pose, betas, transl):
        torch = _torch()
        layer = self.smplx_gt.get(gender)
        if layer is None:
            raise ConversionFileError(f"RICH's ground truth needs the gendered SMPL-X models (SMPLX_MALE.npz, "
                                      f"SMPLX_FEMALE.npz from smpl-x.is.tue.mpg.de) in {self.folder} or beside the "
                                      "SMPL-X body model")
        n = len(global_orient)
        f32 = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        zeros = lambda k: torch.zeros(n, k)  # noqa: E731
        with torch.no_grad():
            out = layer(global_orient=f32(global_orient).reshape(n, 3), body_pose=f32(body_pose).reshape(n, 63),
                        betas=f32(betas).reshape(n, -1), transl=f32(transl).reshape(n, 3), jaw_pose=zeros(3),
                        leye_pose=zeros(3), reye_pose=zeros(3), left_hand_pose=zeros(12), right_hand_pose=zeros(12),
                        expression=zeros(10))
        return out.vertices


def _smplx_layer(path: Path):
    """smplx's SMPL-X as the reference creates RICH's (``num_pca_comps=12``, hands at their mean)."""
    import contextlib
    import io

    import smplx

    with contextlib.redirect_stdout(io.StringIO()):
        return smplx.SMPLX(str(path), num_pca_comps=12, use_pca=True, flat_hand_mean=False, num_betas=10,
                           num_expression_coeffs=10, ext="npz").eval()


def load_eval_bodies(folder: str | os.PathLike | None, protocol: BenchmarkProtocol,
                     body_model: str | os.PathLike | None = None) -> EvalBodies:
    """The SMPL files of `folder` (or ``$HUMAN3R_SMPL_FILES``) for `protocol`: conversion files always, the gendered
    SMPL models (neutral too when present) for SMPL ground truth, the gendered SMPL-X models (from `folder` or the
    folder of the SMPL-X `body_model`) for RICH. One error names every missing file."""
    root = resolve_smpl_folder(folder)
    conversion = load_smpl_conversion(root)
    smpl: dict[int, SmplModel] = {}
    for gender, names in SMPL_MODEL_NAMES.items():
        path = find_smpl_file(root, names)
        if path is not None:
            smpl[GENDER_IDS[gender]] = load_smpl_model(path)
    smplx_gt: dict[int, object] = {}
    if protocol.gt_body_model == "smplx":
        places = [root] + ([Path(body_model).parent if Path(body_model).is_file() else Path(body_model)]
                           if body_model else [])
        missing = []
        for gender, names in SMPLX_GENDERED.items():
            path = next((p for place in places if (p := find_smpl_file(place, names)) is not None), None)
            if path is None:
                missing.append(names[0])
            else:
                smplx_gt[GENDER_IDS[gender]] = _smplx_layer(path)
        if missing:
            raise ConversionFileError(f"RICH's ground truth needs {', '.join(missing)} (smpl-x.is.tue.mpg.de) in "
                                      f"{root} or beside the SMPL-X body model")
    elif not {GENDER_IDS["male"], GENDER_IDS["female"]} <= set(smpl):
        absent = [g for g in ("male", "female") if GENDER_IDS[g] not in smpl]
        raise ConversionFileError(f"{root} lacks the SMPL {' and '.join(absent)} model(s) that pose "
                                  f"{protocol.name}'s ground truth: {GET_FILES}")
    return EvalBodies(root, conversion, smpl, smplx_gt)
