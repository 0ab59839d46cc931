"""SMPL-X readout on the synthetic stand-in: shapes, head placement, frames, and the pelvis-convention transl."""

from __future__ import annotations

import shutil
import time
import warnings

import numpy as np
import pytest
import torch

import human3r.body as body
from human3r.body import BodyModel, body_parameters, load_body_model, read_out_bodies, resolve_body_model_path
from human3r.errors import BodyModelError, InputShapeError


def _random_inputs(n: int, seed: int = 0, angle: float = 0.6):
    """Random but plausible predictions for n people: (rotmat, betas, expression, head, c2w)."""
    import roma

    g = torch.Generator().manual_seed(seed)
    rotvec = (torch.rand(n, 53, 3, generator=g) * 2 - 1) * angle
    rotvec[:, 0] = (torch.rand(n, 3, generator=g) * 2 - 1) * 3.0  # any global orientation
    rotmat = roma.rotvec_to_rotmat(rotvec)
    betas = torch.randn(n, 10, generator=g)
    expression = torch.randn(n, 10, generator=g)
    head = torch.randn(n, 3, generator=g) + torch.tensor([0.0, 0.0, 4.0])
    c2w = torch.eye(4)
    c2w[:3, :3] = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.2, 0.5]))
    c2w[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    return rotmat, betas, expression, head, c2w


def _apply(c2w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x @ c2w[:3, :3].T + c2w[:3, 3]


def test_shapes_and_head_lands_on_prediction(body_model):
    rotmat, betas, expr, head, c2w = _random_inputs(3)
    out = body_model(rotmat, betas, expr, head, c2w)
    assert out.num_people == 3
    assert out.vertices_cam.shape == out.vertices_world.shape == (3, 10475, 3)
    assert out.joints_cam.shape == out.joints_world.shape == (3, body_model.num_joints, 3)
    assert body_model.num_joints == 127
    assert out.body_pose.shape == (3, 21, 3)
    assert out.left_hand_pose.shape == out.right_hand_pose.shape == (3, 15, 3)
    assert out.jaw_pose.shape == out.global_orient_cam.shape == out.global_orient_world.shape == (3, 3)
    assert out.transl_cam.shape == out.transl_world.shape == (3, 3)
    assert body_model.faces.shape == (20908, 3)
    torch.testing.assert_close(out.joints_cam[:, body.HEAD_JOINT], head, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.joints_world[:, body.HEAD_JOINT], out.head_world, rtol=0, atol=1e-5)


def test_zero_pose_zero_shape_is_the_template(body_model, smplx_npz):
    data = np.load(smplx_npz)
    J_rest = torch.from_numpy(data["J_regressor"] @ data["v_template"])  # (55, 3)
    v_rest = torch.from_numpy(data["v_template"])
    n = 2
    rotmat = torch.eye(3).expand(n, 53, 3, 3)
    zeros = torch.zeros(n, 10)
    head = torch.tensor([[0.1, 0.2, 3.0], [-1.0, 0.0, 5.0]])
    out = body_model(rotmat, zeros, zeros, head, torch.eye(4))
    torch.testing.assert_close(out.transl_cam, head - J_rest[body.HEAD_JOINT], rtol=0, atol=1e-6)
    torch.testing.assert_close(out.joints_cam[:, :55], J_rest + out.transl_cam[:, None], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.vertices_cam, v_rest + out.transl_cam[:, None], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.global_orient_cam, torch.zeros(n, 3))


def test_world_is_cam_to_world_applied_to_camera(body_model):
    import roma

    rotmat, betas, expr, head, c2w = _random_inputs(4, seed=1)
    out = body_model(rotmat, betas, expr, head, c2w)
    torch.testing.assert_close(out.vertices_world, _apply(c2w, out.vertices_cam), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.joints_world, _apply(c2w, out.joints_cam), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.head_world, _apply(c2w, head), rtol=0, atol=1e-5)
    R_world = roma.rotvec_to_rotmat(out.global_orient_world)
    torch.testing.assert_close(R_world, c2w[:3, :3] @ rotmat[:, 0], rtol=0, atol=1e-5)


def test_transl_is_standard_smplx_transl(body_model, smplx_npz):
    """Feeding (axis-angle params, transl) to plain smplx.SMPLX reproduces our bodies, in both frames."""
    import smplx

    rotmat, betas, expr, head, c2w = _random_inputs(3, seed=2)
    out = body_model(rotmat, betas, expr, head, c2w)
    ref = smplx.SMPLX(
        str(smplx_npz), gender="neutral", use_pca=False, flat_hand_mean=True, num_betas=10,
        num_expression_coeffs=10, batch_size=3,
    )
    common = dict(
        betas=betas, expression=expr, body_pose=out.body_pose.flatten(1), jaw_pose=out.jaw_pose,
        left_hand_pose=out.left_hand_pose.flatten(1), right_hand_pose=out.right_hand_pose.flatten(1),
        leye_pose=torch.zeros(3, 3), reye_pose=torch.zeros(3, 3),
    )
    with torch.no_grad():
        cam = ref(global_orient=out.global_orient_cam, transl=out.transl_cam, **common)
        world = ref(global_orient=out.global_orient_world, transl=out.transl_world, **common)
    torch.testing.assert_close(cam.vertices, out.vertices_cam, rtol=0, atol=1e-4)
    torch.testing.assert_close(world.vertices, out.vertices_world, rtol=0, atol=1e-4)
    torch.testing.assert_close(world.joints[:, body.HEAD_JOINT], out.head_world, rtol=0, atol=1e-4)


def test_matches_the_reference_head_centred_construction(body_model):
    """Reference SMPL_Layer: pose with global = I, rotate about the pelvis, re-centre on the head, add transl."""
    rotmat, betas, expr, head, c2w = _random_inputs(3, seed=3)
    local = rotmat.clone()
    local[:, 0] = torch.eye(3)
    v0, j0 = body_model.pose(local, betas, expr)
    R = rotmat[:, 0]
    pelvis = j0[:, [0]]
    v = (v0 - pelvis) @ R.transpose(1, 2)
    j = (j0 - pelvis) @ R.transpose(1, 2)
    centre = j[:, [body.HEAD_JOINT]]
    v_ref = v - centre + head[:, None]
    j_ref = j - centre + head[:, None]
    out = body_model(rotmat, betas, expr, head, c2w)
    torch.testing.assert_close(out.vertices_cam, v_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.joints_cam[:, :55], j_ref[:, :55], rtol=0, atol=1e-5)


def test_no_people_gives_zero_length_outputs(body_model):
    out = body_model(torch.zeros(0, 53, 3, 3), torch.zeros(0, 10), torch.zeros(0, 10), torch.zeros(0, 3), torch.eye(4))
    assert out.num_people == 0
    assert out.vertices_cam.shape == (0, 10475, 3)
    assert out.joints_world.shape == (0, body_model.num_joints, 3)
    assert out.transl_world.shape == out.global_orient_world.shape == (0, 3)
    assert out.body_pose.shape == (0, 21, 3)


def test_batch_of_eight_and_without_vertices(body_model):
    rotmat, betas, expr, head, c2w = _random_inputs(8, seed=4)
    t0 = time.perf_counter()
    out = body_model(rotmat, betas, expr, head, c2w)
    elapsed = time.perf_counter() - t0
    assert out.vertices_world.shape == (8, 10475, 3)
    assert torch.isfinite(out.vertices_world).all()
    assert elapsed < 5.0
    lean = body_model(rotmat, betas, expr, head, c2w, with_vertices=False)
    assert lean.vertices_cam is None and lean.vertices_world is None
    torch.testing.assert_close(lean.joints_world, out.joints_world)


def test_float64_inputs_come_back_as_float64(body_model):
    rotmat, betas, expr, head, c2w = _random_inputs(2, seed=5)
    out = body_model(rotmat.double(), betas.double(), expr.double(), head.double(), c2w.double())
    assert out.vertices_cam.dtype == out.transl_cam.dtype == torch.float64


def test_wrong_shapes_are_listed_together(body_model):
    with pytest.raises(InputShapeError) as info:
        body_model(torch.zeros(2, 52, 3, 3), torch.zeros(2, 11), torch.zeros(2, 10), torch.zeros(3, 3), torch.eye(3))
    msg = str(info.value)
    for name in ("rotmat", "betas", "transl_head_cam", "cam_to_world"):
        assert name in msg
    assert "expression" not in msg


# ---------------------------------------------------------------------------------------------------- no body model


def test_parameters_only_without_body_model_warns_once(monkeypatch):
    monkeypatch.setattr(body, "_warned_no_body_model", False)
    rotmat, betas, expr, head, c2w = _random_inputs(2, seed=6)
    with pytest.warns(UserWarning, match="smpl-x.is.tue.mpg.de"):
        out = read_out_bodies(rotmat, betas, expr, head, c2w, body_model=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_out_bodies(rotmat, betas, expr, head, c2w, body_model=None)  # no second warning
    assert out.joints_cam is None and out.vertices_world is None and out.transl_cam is None
    assert out.body_pose.shape == (2, 21, 3)
    torch.testing.assert_close(out.head_world, _apply(c2w, head))
    ref = body_parameters(rotmat, betas, expr, head, c2w)
    torch.testing.assert_close(out.global_orient_world, ref.global_orient_world)


def test_parameters_only_matches_the_posed_parameters(body_model):
    rotmat, betas, expr, head, c2w = _random_inputs(2, seed=7)
    a, b = body_parameters(rotmat, betas, expr, head, c2w), body_model(rotmat, betas, expr, head, c2w)
    for field in ("global_orient_cam", "global_orient_world", "body_pose", "jaw_pose", "head_world"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field))


# ---------------------------------------------------------------------------------------------------- files & errors


def test_missing_file_says_where_to_get_smplx(tmp_path, monkeypatch):
    monkeypatch.delenv(body.BODY_MODEL_ENV, raising=False)
    with pytest.raises(BodyModelError) as info:
        BodyModel(tmp_path / "nope" / "SMPLX_NEUTRAL.npz")
    assert "smpl-x.is.tue.mpg.de" in str(info.value) and body.BODY_MODEL_ENV in str(info.value)
    with pytest.raises(BodyModelError, match="HUMAN3R_BODY_MODEL is not set"):
        resolve_body_model_path(None)
    assert load_body_model(None) is None


def test_folder_and_env_var_resolution(tmp_path, monkeypatch, smplx_npz):
    nested = tmp_path / "models" / "smplx"
    nested.mkdir(parents=True)
    shutil.copy(smplx_npz, nested / "SMPLX_NEUTRAL.npz")
    assert resolve_body_model_path(tmp_path / "models") == nested / "SMPLX_NEUTRAL.npz"
    assert resolve_body_model_path(nested) == nested / "SMPLX_NEUTRAL.npz"
    monkeypatch.setenv(body.BODY_MODEL_ENV, str(nested))
    assert resolve_body_model_path() == nested / "SMPLX_NEUTRAL.npz"
    (tmp_path / "SMPLX_NEUTRAL.pkl").write_bytes(b"x")
    with pytest.raises(BodyModelError, match="chumpy"):
        resolve_body_model_path(tmp_path / "SMPLX_NEUTRAL.pkl")


def test_malformed_file_lists_every_problem(tmp_path, smplx_npz):
    data = dict(np.load(smplx_npz))
    del data["posedirs"]
    data["J_regressor"] = data["J_regressor"][:50]
    bad = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(bad, **data)
    with pytest.raises(BodyModelError) as info:
        BodyModel(bad)
    msg = str(info.value)
    assert "'posedirs'" in msg and "'J_regressor' has shape (50, 10475)" in msg and "smpl-x.is.tue.mpg.de" in msg
    garbage = tmp_path / "garbage" / "SMPLX_NEUTRAL.npz"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not a zip")
    with pytest.raises(BodyModelError, match="cannot read"):
        BodyModel(garbage)
