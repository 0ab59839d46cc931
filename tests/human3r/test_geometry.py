"""Geometry: the reference focal estimate, the working-image crop rule (sizes 512 and 224), the map back to source
pixels, and the rotation / camera-pose conversions."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.errors import InputShapeError
from human3r.geometry import (
    WorkingGeometry,
    camera_pose_to_c2w,
    estimate_focal_weiszfeld,
    intrinsics_matrix,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
    source_to_working_intrinsics,
    source_to_working_pixels,
    working_intrinsics_from_pointmap,
    working_to_source_intrinsics,
    working_to_source_pixels,
)

_PARITY = Path(__file__).resolve().parents[1] / "fixtures" / "parity"


def _parity_file(name: str) -> Path:
    return _PARITY / name  # vendored in the checkout: a missing file is an error, not a skip


def _pinhole_pointmap(K: torch.Tensor, H: int, W: int, seed: int = 0) -> torch.Tensor:
    """(1, H, W, 3) camera-frame points that project exactly to their pixel through K (OpenCV centres)."""
    g = torch.Generator().manual_seed(seed)
    depth = 1.0 + 4.0 * torch.rand(H, W, generator=g, dtype=torch.float64)
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1)  # (H, W, 3)
    rays = pix @ torch.linalg.inv(K).T
    return (rays * depth[..., None]).unsqueeze(0)


def _project(K: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    p = X @ K.T
    return p[..., :2] / p[..., 2:3]


# ---------------------------------------------------------------------------------------------------- focal


@pytest.mark.parametrize("case", ["default", "ttt3r", "reset2"])
def test_focal_matches_reference_parity(case):
    pack = np.load(_parity_file(f"case_{case}.npz"))
    keep = pack["post.keep"]
    pts = torch.cat(
        [torch.from_numpy(pack[f"v{i}.pts3d_in_self_view"]) for i in range(len(keep)) if keep[i]], dim=0
    )
    K = working_intrinsics_from_pointmap(pts)
    np.testing.assert_allclose(K[:, 0, 0].numpy(), pack["post.focal"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(K[:, 1, 1].numpy(), pack["post.focal"], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(K[:, :2, 2].numpy(), pack["post.pp"])


@pytest.mark.parametrize("hw,focal", [((288, 512), 420.0), ((80, 128), 95.5), ((512, 288), 700.0)])
def test_focal_recovers_synthetic_pinhole(hw, focal):
    H, W = hw
    K = intrinsics_matrix(torch.tensor([focal], dtype=torch.float64), torch.tensor([W // 2, H // 2]))[0]
    pts = _pinhole_pointmap(K, H, W)
    est = estimate_focal_weiszfeld(pts.float())
    assert abs(est.item() - focal) / focal < 1e-3


def test_focal_with_explicit_principal_point_and_batch():
    H, W = 60, 100
    K = torch.tensor([[150.0, 0, 41.0], [0, 150.0, 33.0], [0, 0, 1]], dtype=torch.float64)
    pts = torch.cat([_pinhole_pointmap(K, H, W, seed=s) for s in range(3)])
    est = estimate_focal_weiszfeld(pts, torch.tensor([41.0, 33.0]))
    assert est.shape == (3,)
    torch.testing.assert_close(est, torch.full((3,), 150.0, dtype=torch.float64), rtol=1e-6, atol=0)


def test_focal_rejects_unbatched_pointmap():
    with pytest.raises(InputShapeError, match=r"\(B, H, W, 3\)"):
        estimate_focal_weiszfeld(torch.zeros(8, 8, 3))


# ---------------------------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "src,size,working,crop",
    [
        ((1920, 1080), 512, (512, 288), (0, 0, 512, 288)),
        ((640, 480), 512, (512, 384), (0, 0, 512, 384)),
        ((1080, 1920), 512, (288, 512), (0, 0, 288, 512)),
        ((512, 512), 512, (512, 384), (0, 64, 512, 448)),  # squares become 4:3
        ((1000, 700), 512, (512, 352), (0, 3, 512, 355)),
        ((240, 170), 128, (128, 80), (0, 5, 128, 85)),  # the parity pack's frames
        ((300, 200), 512, (512, 336), (0, 2, 512, 338)),  # upscaling
        # size 224: the short side becomes 224, then the centred square
        ((1920, 1080), 224, (224, 224), (87, 0, 311, 224)),
        ((640, 480), 224, (224, 224), (37, 0, 261, 224)),
        ((1080, 1920), 224, (224, 224), (0, 87, 224, 311)),
        ((500, 500), 224, (224, 224), (0, 0, 224, 224)),  # no 4:3 for squares at 224
        ((300, 200), 224, (224, 224), (56, 0, 280, 224)),  # upscaling
    ],
)
def test_working_geometry_reference_rounding(src, size, working, crop):
    g = WorkingGeometry.for_source(*src, size=size)
    assert g.working_wh == working
    assert g.crop_box == crop


@pytest.mark.parametrize("src,size,resized,shrinks", [
    ((1920, 1080), 512, (512, 288), True), ((300, 200), 512, (512, 341), False), ((512, 384), 512, (512, 384), False),
    ((1920, 1080), 224, (398, 224), True), ((300, 200), 224, (336, 224), False), ((800, 400), 224, (448, 224), True),
])
def test_working_geometry_resize_and_filter(src, size, resized, shrinks):
    """The resize the reference does (sizes 512 and 224), and whether it shrinks (LANCZOS) or not (BICUBIC)."""
    g = WorkingGeometry.for_source(*src, size=size)
    assert g.resized_wh == resized
    assert g.shrinks is shrinks


def test_working_geometry_reproduces_reference_preprocessing():
    """PIL resize + our crop box gives the parity pack's working images bit for bit."""
    from PIL import Image

    inputs = np.load(_parity_file("inputs.npz"))
    frames, imgs = inputs["frames"], inputs["img"]
    g = WorkingGeometry.for_source(frames.shape[2], frames.shape[1], size=128)
    for frame, img in zip(frames, imgs):
        work = Image.fromarray(frame).resize(g.resized_wh, Image.LANCZOS).crop(g.crop_box)
        x = np.asarray(work, dtype=np.float32).transpose(2, 0, 1) / 255 * 2 - 1
        np.testing.assert_array_equal(x, img[0])


def test_working_geometry_rejects_bad_sizes():
    with pytest.raises(InputShapeError, match="positive"):
        WorkingGeometry.for_source(0, 10)
    with pytest.raises(InputShapeError, match="too thin"):
        WorkingGeometry.for_source(4000, 10)


# ---------------------------------------------------------------------------------------------------- K round trip


@pytest.mark.parametrize("src", [(1920, 1080), (1000, 700), (240, 170), (1080, 1920), (512, 512)])
def test_intrinsics_round_trip_synthetic_pinhole(src):
    W, H = src
    g = WorkingGeometry.for_source(W, H)
    K_src = torch.tensor([[1.1 * W, 0, 0.52 * W], [0, 1.1 * W, 0.47 * H], [0, 0, 1]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    X = torch.rand(500, 3, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 2.0, 4.0]) + torch.tensor(
        [-1.0, -1.0, 1.0]
    )
    uv_src = _project(K_src, X)
    # the resize + crop acting on where a point appears ...
    uv_work = source_to_working_pixels(uv_src, g)
    # ... equals projecting with the working intrinsics
    K_work = source_to_working_intrinsics(K_src, g)
    assert (_project(K_work, X) - uv_work).abs().max() < 1e-4
    # and mapping working K back to source pixels restores the source camera
    K_back = working_to_source_intrinsics(K_work, g)
    assert (_project(K_back, X) - uv_src).abs().max() < 1e-4
    torch.testing.assert_close(K_back, K_src, rtol=1e-12, atol=1e-9)
    assert (working_to_source_pixels(uv_work, g) - uv_src).abs().max() < 1e-4


@pytest.mark.parametrize("src,size", [((1000, 700), 512), ((240, 170), 128), ((640, 640), 256)])
def test_pixel_map_matches_a_real_resize_and_crop(src, size):
    """An independent check of the convention: a blob's centroid survives PIL's resize + crop where we say."""
    from PIL import Image

    W, H = src
    u0, v0 = 0.41 * W + 0.3, 0.57 * H - 0.2
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    sigma = 0.05 * max(W, H)
    blob = np.exp(-((xx - u0) ** 2 + (yy - v0) ** 2) / (2 * sigma**2)).astype(np.float32)
    g = WorkingGeometry.for_source(W, H, size=size)
    work = np.asarray(Image.fromarray(blob, mode="F").resize(g.resized_wh, Image.LANCZOS).crop(g.crop_box))
    vy, vx = np.mgrid[0 : work.shape[0], 0 : work.shape[1]]
    centroid = torch.tensor([(work * vx).sum() / work.sum(), (work * vy).sum() / work.sum()], dtype=torch.float64)
    back = working_to_source_pixels(centroid, g)
    assert (back - torch.tensor([u0, v0], dtype=torch.float64)).abs().max() < 0.02


def test_fork_rescale_is_off_by_pixels_when_there_is_a_crop():
    """The fork's K rescale (orig / working size, crop ignored) misplaces the working image's corners."""
    g = WorkingGeometry.for_source(1000, 700)
    corners = torch.tensor([[0.0, 0.0], [511.0, 351.0]], dtype=torch.float64)
    ours = working_to_source_pixels(corners, g)
    fork = corners * torch.tensor([1000 / g.working_wh[0], 700 / g.working_wh[1]], dtype=torch.float64)
    assert (ours - fork).abs().max() > 5.0


# ---------------------------------------------------------------------------------------------------- rotations


def _reference_quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """The reference's real-first conversion (the 2/|q|^2 form), as an independent check of roma's."""
    r, i, j, k = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    m = torch.stack([
        1 - s * (j * j + k * k), s * (i * j - k * r), s * (i * k + j * r),
        s * (i * j + k * r), 1 - s * (i * i + k * k), s * (j * k - i * r),
        s * (i * k - j * r), s * (j * k + i * r), 1 - s * (i * i + j * j),
    ], -1)
    return m.reshape(q.shape[:-1] + (3, 3))


def test_camera_pose_to_c2w_reads_quaternions_real_first():
    theta = 0.7
    pose = torch.tensor([[1.0, 2.0, 3.0, math.cos(theta / 2), 0.0, 0.0, math.sin(theta / 2)]])  # about +z
    c2w = camera_pose_to_c2w(pose)
    expected = torch.eye(4)
    expected[:2, :2] = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    expected[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    assert c2w.shape == (1, 4, 4)
    torch.testing.assert_close(c2w[0], expected)


def test_camera_pose_to_c2w_matches_the_reference_formula():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2, 5, 4, generator=g, dtype=torch.float64), dim=-1)
    pose = torch.cat([torch.randn(2, 5, 3, generator=g, dtype=torch.float64), q], dim=-1)
    c2w = camera_pose_to_c2w(pose)
    assert c2w.shape == (2, 5, 4, 4)
    torch.testing.assert_close(c2w[..., :3, :3], _reference_quaternion_to_matrix(q), rtol=0, atol=1e-12)
    torch.testing.assert_close(c2w[..., :3, 3], pose[..., :3], rtol=0, atol=0)
    torch.testing.assert_close(c2w[..., 3, :], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64).expand(2, 5, 4))


def test_rot6d_to_rotmat():
    ident = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # row-major 3x2: columns (1, 0, 0) and (0, 1, 0)
    torch.testing.assert_close(rot6d_to_rotmat(ident), torch.eye(3))
    x = torch.randn(4, 53, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    R = rot6d_to_rotmat(x)
    assert R.shape == (4, 53, 3, 3)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=torch.float64).expand_as(R))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(4, 53, dtype=torch.float64))
    first = x.reshape(4, 53, 3, 2)[..., 0]
    torch.testing.assert_close(R[..., 0], first / first.norm(dim=-1, keepdim=True))


def test_rotmat_to_axis_angle_round_trip_and_empty():
    import roma

    rotvec = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rotvec = rotvec / rotvec.norm(dim=-1, keepdim=True) * torch.linspace(0.0, 3.0, 6, dtype=torch.float64)[:, None]
    torch.testing.assert_close(rotmat_to_axis_angle(roma.rotvec_to_rotmat(rotvec)), rotvec)
    assert rotmat_to_axis_angle(torch.zeros(0, 53, 3, 3)).shape == (0, 53, 3)
