"""The training criterion term by term, on small hand-made inputs (each value worked out independently here)."""

import math

import pytest
import torch

from human3r.errors import ConfigError, InputShapeError
from human3r.training.config import LossConfig, OptimizerConfig, SmplLossWeights, TrainConfig
from human3r.training.losses import (
    check_loss_inputs,
    confidence_weighted,
    focal_score_loss,
    l1,
    pointmap_norm_factor,
    pose_encoding,
    rgb_loss,
    transform_points,
)
from human3r.training.step import learning_rate


def test_focal_score_loss_by_hand():
    pred = torch.tensor([0.9, 0.2, 0.5])
    gt = torch.tensor([1.0, 0.0, 0.0])
    eps = 1e-7
    pos = math.log(0.9 + eps) * 0.1 ** 2
    neg = math.log(0.8 + eps) * 0.2 ** 2 + math.log(0.5 + eps) * 0.5 ** 2
    assert float(focal_score_loss(pred, gt)) == pytest.approx(-(pos + neg) / 1, rel=1e-6)
    # no positive: the negative part alone, not divided
    assert float(focal_score_loss(pred[1:], gt[1:])) == pytest.approx(-neg, rel=1e-6)


def test_l1_of_nothing_is_zero_and_keeps_the_graph_free():
    empty = torch.zeros(0, 3, requires_grad=True)
    assert float(l1(empty, torch.zeros(0, 3))) == 0.0
    a = torch.tensor([1.0, -2.0], requires_grad=True)
    loss = l1(a, torch.zeros(2))
    loss.backward()
    assert float(loss.detach()) == 1.5 and a.grad.tolist() == [0.5, -0.5]


def test_norm_factor_weights_valid_self_and_cross_points_by_confidence():
    # one sample, 1x2 image: pixel 0 valid, pixel 1 invalid (ignored even though it is far away)
    pts_self = torch.tensor([[[[3.0, 4.0, 0.0], [100.0, 0, 0]]]])  # |p| = 5
    pts_cross = torch.tensor([[[[0.0, 0.0, 2.0], [100.0, 0, 0]]]])  # |p| = 2
    valid = torch.tensor([[[True, False]]])
    w_self, w_cross = torch.tensor([[[1.0, 9.0]]]), torch.tensor([[[3.0, 9.0]]])
    f = pointmap_norm_factor([pts_self], [pts_cross], [valid], [w_self], [w_cross])
    assert f.shape == (1, 1, 1, 1)
    assert float(f) == pytest.approx((1 * 5 + 3 * 2) / (1 + 3 + 1e-8), rel=1e-6)


def test_confidence_weighting():
    loss, conf = torch.tensor([1.0, 2.0]), torch.tensor([1.0, math.e])
    expected = ((1 * 1 - 0.2 * 0) + (2 * math.e - 0.2 * 1)) / 2
    assert float(confidence_weighted(loss, conf, 0.2)) == pytest.approx(expected, rel=1e-6)
    assert float(confidence_weighted(torch.zeros(0), torch.ones(0), 0.2)) == 0.0


def test_pose_encoding_is_translation_and_real_first_positive_quaternion():
    angle = 0.3
    c2w = torch.eye(4)[None].clone()
    c2w[0, :3, :3] = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0],
                                   [0, 0, 1]])
    c2w[0, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    enc = pose_encoding(c2w)[0]
    assert enc[:3].tolist() == [1.0, 2.0, 3.0]
    want = [math.cos(angle / 2), 0, 0, math.sin(angle / 2)]
    assert enc[3:].tolist() == pytest.approx(want, abs=1e-6)
    flipped = pose_encoding(torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0]))[None])[0]  # 180 deg about z: w = 0
    assert flipped[3] >= 0


def test_transform_points_applies_rotation_then_translation():
    T = torch.eye(4)[None].clone()
    T[0, :3, :3] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    T[0, :3, 3] = torch.tensor([10.0, 0, 0])
    p = torch.tensor([1.0, 0, 0]).reshape(1, 1, 1, 3)
    assert transform_points(T, p).flatten().tolist() == [10.0, 1.0, 0.0]


def test_rgb_loss_is_the_view_average_of_mses():
    class V:
        def __init__(self, v):
            self.img = torch.full((1, 3, 2, 2), v)

    class P:
        def __init__(self, v):
            self.rgb = torch.full((1, 2, 2, 3), v)

    total, details = rgb_loss([V(0.0), V(0.0)], [P(1.0), P(0.5)])
    assert float(total) == pytest.approx((1.0 + 0.25) / 2)
    assert details == {"RGBLoss_rgb/1": 1.0, "RGBLoss_rgb/2": 0.25}


def test_unsupported_views_are_named():
    class V:
        camera_only = torch.tensor([False, True])
        depth_only = torch.tensor([False, False])
        single_view = torch.tensor([False, False])
        is_metric = torch.tensor([True, True])

    with pytest.raises(InputShapeError, match="view 0: camera_only"):
        check_loss_inputs([V()])


def test_learning_rate_schedule():
    opt = OptimizerConfig()  # 1e-4 after 5 warm-up epochs, half cosine to 1e-6 at 40
    assert learning_rate(0.0, opt) == 0.0
    assert learning_rate(2.5, opt) == pytest.approx(5e-5)
    assert learning_rate(5.0, opt) == pytest.approx(1e-4)
    assert learning_rate(22.5, opt) == pytest.approx(1e-6 + (1e-4 - 1e-6) / 2)
    assert learning_rate(40.0, opt) == pytest.approx(1e-6)
    rates = [learning_rate(e / 10, opt) for e in range(0, 401)]
    peak = rates.index(max(rates))
    assert all(a <= b for a, b in zip(rates[:peak], rates[1:peak + 1]))
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))


def test_configs_reject_bad_values():
    with pytest.raises(ConfigError, match="clip_norm"):
        OptimizerConfig(clip_norm="all")
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="float16")
    with pytest.raises(ConfigError, match="both trainable and frozen"):
        TrainConfig(trainable=("backbone",))
    with pytest.raises(ConfigError, match="j2d"):
        SmplLossWeights(j2d=-1.0)
    with pytest.raises(ConfigError, match="conf_alpha"):
        LossConfig(conf_alpha="x")
    assert SmplLossWeights().shape == 0.1 and LossConfig().conf_alpha == 0.2
