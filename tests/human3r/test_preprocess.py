"""Preprocessing reproduces the reference load_images / pad_image tensors exactly (the crop rule itself is
`human3r.geometry.WorkingGeometry`, tested in test_geometry.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.errors import InputShapeError
from human3r.preprocess import pad_image, prepare_frame, resize_and_crop

INPUTS = Path(__file__).parents[1] / "fixtures" / "parity" / "inputs.npz"


@pytest.fixture(scope="module")
def inputs():
    return np.load(INPUTS)


def test_fixture_frames_match_reference_exactly(inputs):
    for i, rgb in enumerate(inputs["frames"]):
        frame = prepare_frame(rgb, size=128, mhmr_res=224)
        np.testing.assert_array_equal(frame.img.numpy(), inputs["img"][i])
        np.testing.assert_allclose(frame.img_mhmr.numpy(), inputs["img_mhmr"][i], atol=2e-7, rtol=0)
        assert frame.true_shape == tuple(inputs["true_shape"][i][0])


def _reference_load_image(rgb: np.ndarray, size: int):
    """dust3r `load_images` (with `_resize_pil_image`) for one frame, as the reference writes it: the oracle."""
    from PIL import Image

    img = Image.fromarray(rgb)
    W1, H1 = img.size
    long_edge_size = round(size * max(W1 / H1, H1 / W1)) if size == 224 else size
    S = max(img.size)
    interp = Image.LANCZOS if S > long_edge_size else Image.BICUBIC
    img = img.resize(tuple(int(round(x * long_edge_size / S)) for x in img.size), interp)
    W, H = img.size
    cx, cy = W // 2, H // 2
    if size == 224:
        half = min(cx, cy)
        return img.crop((cx - half, cy - half, cx + half, cy + half))
    halfw, halfh = ((2 * cx) // 16) * 8, ((2 * cy) // 16) * 8
    if W == H:
        halfh = 3 * halfw / 4
    return img.crop((cx - halfw, cy - halfh, cx + halfw, cy + halfh))


@pytest.mark.parametrize("size", [512, 224, 128])
@pytest.mark.parametrize("hw", [(1080, 1920), (700, 1000), (1920, 1080), (512, 512), (200, 300), (170, 240)])
def test_resize_and_crop_matches_reference_load_images(hw, size):
    frame = np.random.default_rng(0).integers(0, 255, (*hw, 3), dtype=np.uint8)
    ours = np.asarray(resize_and_crop(frame, size))
    np.testing.assert_array_equal(ours, np.asarray(_reference_load_image(frame, size)))
    assert ours.shape[0] % 16 == 0 and ours.shape[1] % 16 == 0


def test_frame_too_thin_to_crop_is_refused():
    with pytest.raises(InputShapeError, match="too thin"):
        prepare_frame(np.zeros((16, 4000, 3), np.uint8))


@pytest.mark.parametrize(
    "hw, expected",
    [((1080, 1920), (288, 512)), ((480, 640), (384, 512)), ((1920, 1080), (512, 288)), ((600, 600), (384, 512))],
)
def test_working_sizes(hw, expected):
    img = resize_and_crop(np.zeros((*hw, 3), np.uint8), 512)
    assert (img.size[1], img.size[0]) == expected


def test_pad_image_centres_with_minus_one():
    img = torch.zeros(1, 3, 288, 512)
    out = pad_image(img, 896)
    assert out.shape == (1, 3, 896, 896)
    assert torch.all(out[:, :, :196] == -1) and torch.all(out[:, :, 196 + 504:] == -1)
    assert torch.all(out[:, :, 196:196 + 504] == 0)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), [1, 2, 3]])
def test_bad_input_raises(bad):
    with pytest.raises(InputShapeError):
        prepare_frame(bad)
