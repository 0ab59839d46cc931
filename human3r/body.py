"""SMPL-X readout: the network's per-person rotations, shape and head translation -> posed bodies.

Human3R predicts, per person, 53 joint rotations (global, 21 body, 15 left hand, 15 right hand, jaw), 10 betas,
10 expression coefficients and the 3-D position of SMPL-X joint 15 ("head") in the camera frame. The reference
(``SMPL_Layer(person_center='head')``) poses the body with zero global orientation, rotates it about the pelvis,
and shifts it so the head joint lands on the prediction. Posing once with the global rotation and translating by
``transl = head_pred - head_posed`` is the same body, and that ``transl`` is the standard (pelvis-convention)
SMPL-X ``transl``: feed it to any SMPL-X implementation with the same parameters and you get the same mesh.

Pure tensor functions come first; :class:`BodyModel` loads the SMPL-X assets once from an explicit path and
takes every parameter on each call. ``smplx`` is imported where used; rotation conversions are
``human3r.geometry``'s.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from human3r.errors import BodyModelError, InputShapeError
from human3r.geometry import rotmat_to_axis_angle
from human3r.smplx_file import (
    BODY_MODEL_ENV,
    GET_SMPLX,
    NUM_BETAS,
    NUM_EXPRESSION,
    NUM_VERTICES,
    resolve_body_model_path,
    validate_body_model_file,
)

__all__ = [
    "BODY_MODEL_ENV",
    "HEAD_JOINT",
    "BodyModel",
    "BodyOutput",
    "body_parameters",
    "load_body_model",
    "pelvis_transl_from_head",
    "read_out_bodies",
    "resolve_body_model_path",
]

logger = logging.getLogger(__name__)

HEAD_JOINT = 15  # SMPL-X joint "head": the person centre Human3R regresses (smplx.joint_names.JOINT_NAMES[15])
PELVIS_JOINT = 0
NUM_ROTATIONS = 53  # global + 21 body + 15 left hand + 15 right hand + jaw
_PIP = "pip install smplx==0.1.28"


# ------------------------------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyOutput:
    """SMPL-X bodies of the N people of one frame. Rotations are axis-angle (radians); lengths in model units (m).

    The parameter fields are always filled. The posed fields (``transl_*``, ``joints_*``, ``vertices_*``) need the
    SMPL-X body model and are ``None`` without it; ``vertices_*`` are also ``None`` when not requested.
    """

    global_orient_cam: torch.Tensor  # (N, 3) root orientation in the camera frame
    global_orient_world: torch.Tensor  # (N, 3) root orientation in the world frame (R_c2w @ R_cam)
    body_pose: torch.Tensor  # (N, 21, 3)
    left_hand_pose: torch.Tensor  # (N, 15, 3) full articulation, flat hand mean
    right_hand_pose: torch.Tensor  # (N, 15, 3)
    jaw_pose: torch.Tensor  # (N, 3); eye poses are zero
    betas: torch.Tensor  # (N, 10) neutral SMPL-X shape
    expression: torch.Tensor  # (N, 10)
    head_cam: torch.Tensor  # (N, 3) head joint (15) in the camera frame, as predicted
    head_world: torch.Tensor  # (N, 3) head joint in the world frame
    transl_cam: torch.Tensor | None = None  # (N, 3) SMPL-X `transl` (pelvis convention) with global_orient_cam
    transl_world: torch.Tensor | None = None  # (N, 3) SMPL-X `transl` with global_orient_world
    joints_cam: torch.Tensor | None = None  # (N, J, 3) smplx joints (J = 127: 55 skeleton + 21 extra + 51 landmarks)
    joints_world: torch.Tensor | None = None  # (N, J, 3)
    vertices_cam: torch.Tensor | None = None  # (N, 10475, 3)
    vertices_world: torch.Tensor | None = None  # (N, 10475, 3)

    @property
    def num_people(self) -> int:
        return self.betas.shape[0]


# ------------------------------------------------------------------------------------------------------------------
# Pure functions
# ------------------------------------------------------------------------------------------------------------------


def _check_inputs(
    rotmat: torch.Tensor,
    betas: torch.Tensor,
    expression: torch.Tensor,
    head_cam: torch.Tensor,
    cam_to_world: torch.Tensor,
) -> None:
    n = rotmat.shape[0] if rotmat.ndim > 0 else -1
    expected = {
        "rotmat": (rotmat, (n, NUM_ROTATIONS, 3, 3)),
        "betas": (betas, (n, NUM_BETAS)),
        "expression": (expression, (n, NUM_EXPRESSION)),
        "transl_head_cam": (head_cam, (n, 3)),
        "cam_to_world": (cam_to_world, (4, 4)),
    }
    problems = [
        f"{name}: expected {tuple(shape)}, got {tuple(t.shape)}"
        for name, (t, shape) in expected.items()
        if tuple(t.shape) != tuple(shape)
    ]
    if problems:
        raise InputShapeError(
            "SMPL-X readout inputs have the wrong shape (N = people in the frame): " + "; ".join(problems)
        )


def pelvis_transl_from_head(head: torch.Tensor, head_posed: torch.Tensor) -> torch.Tensor:
    """SMPL-X ``transl`` that puts the head joint at ``head``.

    head: (N, 3) target head position. head_posed: (N, 3) head joint of the body posed with ``transl = 0`` and
    the same orientation. Returns (N, 3). (SMPL-X adds ``transl`` to every vertex and joint.)
    """
    return head - head_posed


def body_parameters(
    rotmat: torch.Tensor,
    betas: torch.Tensor,
    expression: torch.Tensor,
    transl_head_cam: torch.Tensor,
    cam_to_world: torch.Tensor,
) -> BodyOutput:
    """The parameter half of :class:`BodyOutput` (no body model needed): axis-angle poses, camera and world frame.

    rotmat: (N, 53, 3, 3); betas, expression: (N, 10); transl_head_cam: (N, 3); cam_to_world: (4, 4).

    1. rotations -> axis-angle, split as [global | 21 body | 15 left hand | 15 right hand | jaw];
    2. world orientation ``R_c2w @ R_global``; world head ``R_c2w @ head + t_c2w``.
    """
    _check_inputs(rotmat, betas, expression, transl_head_cam, cam_to_world)
    cam_to_world = cam_to_world.to(rotmat)
    R_c2w, t_c2w = cam_to_world[:3, :3], cam_to_world[:3, 3]
    rotvec = rotmat_to_axis_angle(rotmat)  # (N, 53, 3)
    global_world = R_c2w @ rotmat[:, 0]  # (N, 3, 3)
    return BodyOutput(
        global_orient_cam=rotvec[:, 0],
        global_orient_world=rotmat_to_axis_angle(global_world),
        body_pose=rotvec[:, 1:22],
        left_hand_pose=rotvec[:, 22:37],
        right_hand_pose=rotvec[:, 37:52],
        jaw_pose=rotvec[:, 52],
        betas=betas,
        expression=expression,
        head_cam=transl_head_cam,
        head_world=transl_head_cam @ R_c2w.T + t_c2w,
    )


_warned_no_body_model = False


def read_out_bodies(
    rotmat: torch.Tensor,
    betas: torch.Tensor,
    expression: torch.Tensor,
    transl_head_cam: torch.Tensor,
    cam_to_world: torch.Tensor,
    body_model: BodyModel | None = None,
    with_vertices: bool = True,
) -> BodyOutput:
    """Posed bodies with ``body_model``; without one, the parameters only (joints absent), warning once per process.

    Shapes as in :func:`body_parameters`.
    """
    if body_model is not None:
        return body_model(rotmat, betas, expression, transl_head_cam, cam_to_world, with_vertices=with_vertices)
    global _warned_no_body_model
    if not _warned_no_body_model:
        _warned_no_body_model = True
        warnings.warn(
            "no SMPL-X body model given: writing SMPL-X parameters and head positions only, without joints, "
            f"vertices or pelvis-convention transl. {GET_SMPLX}",
            stacklevel=2,
        )
    return body_parameters(rotmat, betas, expression, transl_head_cam, cam_to_world)


# ------------------------------------------------------------------------------------------------------------------
# Body model
# ------------------------------------------------------------------------------------------------------------------


class BodyModel:
    """Neutral SMPL-X (10 betas, 10 expression, flat hand mean, no PCA) loaded once; stateless calls.

    Wraps ``smplx.SMPLXLayer``, smplx's stateless variant of ``smplx.create(model_type='smplx', gender='neutral',
    use_pca=False, flat_hand_mean=True, num_betas=10, num_expression_coeffs=10, ext='npz')``: it takes rotation
    matrices (no rotmat -> axis-angle -> rotmat round trip), has no batch size fixed at construction, and ignores
    the hand mean exactly as ``flat_hand_mean=True`` does.
    """

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> None:
        self.path = resolve_body_model_path(path)
        validate_body_model_file(self.path)
        try:
            import smplx
        except ImportError as err:
            raise ImportError(f"the SMPL-X readout needs smplx: {_PIP}") from err
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):  # smplx prints a WARNING for 10+10-component models
                layer = smplx.SMPLXLayer(
                    str(self.path),
                    gender="neutral",
                    num_betas=NUM_BETAS,
                    num_expression_coeffs=NUM_EXPRESSION,
                    use_pca=False,
                    flat_hand_mean=True,
                    use_face_contour=False,
                    ext="npz",
                )
        except Exception as err:  # smplx raises assorted errors on a malformed file
            raise BodyModelError(f"smplx could not build a body model from {self.path}: {err}. {GET_SMPLX}") from err
        if captured.getvalue().strip():
            logger.debug("smplx: %s", captured.getvalue().strip())
        self._layer = layer.eval().to(device)
        self.faces = torch.as_tensor(np.asarray(layer.faces, dtype=np.int64))  # (F, 3)
        with torch.no_grad():
            self.num_joints = int(self._layer().joints.shape[1])

    @property
    def device(self) -> torch.device:
        return self._layer.shapedirs.device

    @property
    def dtype(self) -> torch.dtype:
        return self._layer.shapedirs.dtype

    def to(self, device: str | torch.device) -> BodyModel:
        self._layer = self._layer.to(device)
        return self

    @torch.no_grad()
    def pose(
        self, rotmat: torch.Tensor, betas: torch.Tensor, expression: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SMPL-X with ``transl = 0``: rotmat (N, 53, 3, 3) incl. global, betas / expression (N, 10).

        Returns (vertices (N, 10475, 3), joints (N, J, 3)). Eye poses are identity.
        """
        n = rotmat.shape[0]
        if n == 0:
            return rotmat.new_zeros(0, NUM_VERTICES, 3), rotmat.new_zeros(0, self.num_joints, 3)
        rotmat, betas, expression = (t.to(device=self.device, dtype=self.dtype) for t in (rotmat, betas, expression))
        eye = torch.eye(3, dtype=self.dtype, device=self.device).expand(n, 1, 3, 3)
        out = self._layer(
            betas=betas,
            expression=expression,
            global_orient=rotmat[:, 0:1],
            body_pose=rotmat[:, 1:22],
            left_hand_pose=rotmat[:, 22:37],
            right_hand_pose=rotmat[:, 37:52],
            jaw_pose=rotmat[:, 52:53],
            leye_pose=eye,
            reye_pose=eye,
            transl=torch.zeros(n, 3, dtype=self.dtype, device=self.device),
        )
        return out.vertices, out.joints

    @torch.no_grad()
    def __call__(
        self,
        rotmat: torch.Tensor,
        betas: torch.Tensor,
        expression: torch.Tensor,
        transl_head_cam: torch.Tensor,
        cam_to_world: torch.Tensor,
        with_vertices: bool = True,
    ) -> BodyOutput:
        """Posed bodies of one frame in the camera and world frames.

        rotmat: (N, 53, 3, 3) [global, 21 body, 15 left hand, 15 right hand, jaw]; betas, expression: (N, 10);
        transl_head_cam: (N, 3) predicted head joint in the camera frame; cam_to_world: (4, 4).

        1. pose with the camera-frame global orientation and ``transl = 0``;
        2. ``transl_cam = head_pred - head_posed`` (the head lands exactly on the prediction);
        3. world frame: points ``R p + t``; pelvis-convention ``transl_world = R (pelvis + transl_cam) + t - pelvis``,
           since SMPL-X rotates about the (pose-independent) rest pelvis.
        """
        params = body_parameters(rotmat, betas, expression, transl_head_cam, cam_to_world)
        dtype = rotmat.dtype
        c2w = cam_to_world.to(device=self.device, dtype=self.dtype)
        R, t = c2w[:3, :3], c2w[:3, 3]
        verts, joints = self.pose(rotmat, betas, expression)  # 1.
        head = transl_head_cam.to(device=self.device, dtype=self.dtype)
        transl_cam = pelvis_transl_from_head(head, joints[:, HEAD_JOINT])  # 2.
        pelvis = joints[:, PELVIS_JOINT]  # rest pelvis: the root rotates about itself
        joints_cam = joints + transl_cam[:, None]
        joints_world = joints_cam @ R.T + t  # 3.
        transl_world = (pelvis + transl_cam) @ R.T + t - pelvis
        vertices_cam = vertices_world = None
        if with_vertices:
            vertices_cam = verts + transl_cam[:, None]
            vertices_world = vertices_cam @ R.T + t

        def back(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(device=rotmat.device, dtype=dtype)

        return BodyOutput(
            **{f: getattr(params, f) for f in _PARAM_FIELDS},
            transl_cam=back(transl_cam),
            transl_world=back(transl_world),
            joints_cam=back(joints_cam),
            joints_world=back(joints_world),
            vertices_cam=back(vertices_cam),
            vertices_world=back(vertices_world),
        )


_PARAM_FIELDS = (
    "global_orient_cam",
    "global_orient_world",
    "body_pose",
    "left_hand_pose",
    "right_hand_pose",
    "jaw_pose",
    "betas",
    "expression",
    "head_cam",
    "head_world",
)


def load_body_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> BodyModel | None:
    """The body model from ``path`` or ``$HUMAN3R_BODY_MODEL``; None when neither is given (parameters-only mode).

    A path that is given but missing or malformed raises :class:`BodyModelError`: a typo should not silently
    drop the meshes.
    """
    if path is None and not os.environ.get(BODY_MODEL_ENV):
        return None
    return BodyModel(path, device=device)
