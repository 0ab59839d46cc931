"""Streaming generator: reset bookkeeping, pose chaining, TTT3R gating, empty frames and flat memory."""

import dataclasses
import inspect

import pytest
import torch

from human3r import Frame, Human3R, Human3RConfig, run_stream
from human3r.config import HeadsConfig


def _small_cfg(**heads) -> Human3RConfig:
    cfg = Human3RConfig.preset("tiny")
    return dataclasses.replace(cfg, image_size=64, dino=dataclasses.replace(cfg.dino, image_res=28),
                               heads=dataclasses.replace(cfg.heads, **heads) if heads else cfg.heads)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = Human3R(_small_cfg()).eval()
    with torch.no_grad():  # non-trivial token tables (they are zeros before a checkpoint is loaded)
        for name, p in m.named_parameters():
            if p.ndim >= 2 and ("token" in name or name.endswith(".mem")):
                p.normal_()
    return m


def _frames(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        yield Frame(torch.rand(1, 3, 32, 48, generator=g) * 2 - 1, torch.rand(1, 3, 28, 28, generator=g) * 2 - 1)


def test_is_a_generator(model):
    assert inspect.isgenerator(run_stream(model, _frames(1)))


def test_reset_duplicates_and_pose_chaining(model):
    views = list(run_stream(model, _frames(5), reset_interval=2, include_duplicates=True))
    assert [v.index for v in views] == [0, 1, 1, 2, 3, 3, 4]
    assert [v.duplicate for v in views] == [False, False, True, False, False, True, False]
    assert [v.reset for v in views] == [False, True, False, False, True, False, False]
    kept = [v for v in views if not v.duplicate]
    assert len(list(run_stream(model, _frames(5), reset_interval=2))) == len(kept) == 5
    p1, p3 = views[1].output.c2w[0], views[4].output.c2w[0]
    torch.testing.assert_close(views[3].c2w, p1 @ views[3].output.c2w[0])
    torch.testing.assert_close(views[6].c2w, p1 @ p3 @ views[6].output.c2w[0])
    torch.testing.assert_close(views[0].c2w, views[0].output.c2w[0])
    # the duplicate starts a fresh segment: pose_token query, then the memory read-out again
    traced = list(run_stream(model, _frames(5), reset_interval=2, include_duplicates=True, trace=True))
    token = model.decoder.pose_token
    for i, fresh in enumerate([True, False, True, False, False, True, False]):
        assert torch.equal(traced[i].trace["pose_query"], token) == fresh, i


def test_ttt3r_gate_skipped_on_segment_start(model):
    views = list(run_stream(model, _frames(3), use_ttt3r=True, trace=True))
    assert "ttt3r_gate" not in views[0].trace
    torch.testing.assert_close(views[0].state.state, views[0].trace["state_new"])
    g = views[1].trace["ttt3r_gate"][..., None]
    expected = views[1].trace["state_new"] * g + views[1].trace["state_in"] * (1 - g)
    torch.testing.assert_close(views[1].state.state, expected)


def test_frames_without_people_have_empty_tensors():
    m = Human3R(dataclasses.replace(_small_cfg(), heads=HeadsConfig(
        dpt_layer_dims=(16, 24, 32, 48), dpt_feature_dim=32, dpt_last_dim=16, det_threshold=0.999999))).eval()
    v = next(run_stream(m, _frames(1)))
    h = v.output.humans
    assert h.count == 0
    assert h.rotmat.shape == (1, 0, 53, 3, 3) and h.track_id.shape == (1, 0) and h.track_id.dtype == torch.long
    assert h.transl.shape == (1, 0, 3) and h.loc.shape == (1, 0, 2)
    assert v.state.tracks.tokens is None
    assert v.output.pts3d_self.shape == (1, 32, 48, 3)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


def test_memory_stays_flat_over_300_frames(model):
    rss = {}
    for v in run_stream(model, _frames(300, seed=1), reset_interval=100):
        if v.index in (50, 299):
            rss[v.index] = _rss_mb()
    assert v.index == 299
    assert rss[299] - rss[50] < 30, rss
