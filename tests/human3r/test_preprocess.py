"""Preprocessing reproduces the reference load_images / pad_image tensors exactly."""

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
