"""Intrinsics: the reference focal estimate, the working-image geometry and the map back to source pixels."""

from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.errors import InputShapeError
from human3r.geometry import (
    WorkingGeometry,
    estimate_focal_weiszfeld,
    intrinsics_matrix,
    source_to_working_intrinsics,
    source_to_working_pixels,
    working_intrinsics_from_pointmap,
    working_to_source_intrinsics,
    working_to_source_pixels,
)

_PARITY_DIRS = [Path(__file__).resolve().parents[1] / "fixtures" / "parity", Path("/work/shared/parity")]


def _parity_file(name: str) -> Path:
    for d in _PARITY_DIRS:
        if (d / name).is_file():
            return d / name
    pytest.skip(f"parity fixture {name} not found in {[str(d) for d in _PARITY_DIRS]}")


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
    ],
)
def test_working_geometry_reference_rounding(src, size, working, crop):
    g = WorkingGeometry.for_source(*src, size=size)
    assert g.working_wh == working
    assert g.crop_box == crop


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


@pytest.mark.parametrize("src", [(1920, 1080), (1000, 700), (240, 170), (1080, 1920), (512, 512), (300, 200)])
def test_preprocess_crops_exactly_the_working_geometry(src):
    """human3r.preprocess does the pixel work with its own rounding; the two must never drift apart."""
    from human3r.preprocess import resize_and_crop

    W, H = src
    size = 128 if src == (240, 170) else 512
    from PIL import Image

    frame = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    g = WorkingGeometry.for_source(W, H, size=size)
    filt = Image.LANCZOS if max(W, H) > size else Image.BICUBIC
    ours = Image.fromarray(frame).resize(g.resized_wh, filt).crop(g.crop_box)
    np.testing.assert_array_equal(np.asarray(resize_and_crop(frame, size)), np.asarray(ours))
