"""Streaming generator: reset bookkeeping, pose chaining, TTT3R gating, intrinsics, empty frames, flat memory."""

import dataclasses
import inspect

import pytest
import torch

from human3r import Frame, Human3R, Human3RConfig, run_stream
from human3r.config import HeadsConfig
from human3r.geometry import working_intrinsics_from_pointmap
from human3r.parity import Recorder


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
    with Recorder(model) as recorder:
        traced = list(run_stream(model, _frames(5), reset_interval=2, include_duplicates=True))
    assert len(recorder.calls) == len(traced) == 7  # one recorded forward call per view
    token = model.decoder.pose_token
    for i, fresh in enumerate([True, False, True, False, False, True, False]):
        assert torch.equal(recorder.calls[i]["pose_query"], token) == fresh, i


@pytest.mark.parametrize("prefetch", [0, 3])
def test_tags_ride_with_their_frames(model, prefetch):
    """`(tag, frame)` inputs: each view carries its frame's tag (a reset duplicate its reset frame's), however far
    ahead frames are prepared; the outputs are those of untagged frames."""
    plain = list(run_stream(model, _frames(5), reset_interval=2, include_duplicates=True))
    tagged = list(run_stream(model, ((f"frame-{i}", f) for i, f in enumerate(_frames(5))), reset_interval=2,
                             include_duplicates=True, prefetch=prefetch))
    assert [v.tag for v in tagged] == [f"frame-{v.index}" for v in plain] and [v.tag for v in plain] == [None] * 7
    for a, b in zip(plain, tagged, strict=True):
        torch.testing.assert_close(a.c2w, b.c2w, atol=0, rtol=0)


def test_ttt3r_gate_skipped_on_segment_start(model):
    with Recorder(model) as recorder:
        views = list(run_stream(model, _frames(4), use_ttt3r=True, reset_interval=3, include_duplicates=True))
    calls = recorder.calls
    assert [v.duplicate for v in views] == [False, False, False, True, False]
    # no gate on a segment's first view (view 0, and view 3, the duplicate after the reset): plain overwrite
    assert ["ttt3r_gate" in c for c in calls] == [False, True, True, False, True]
    for i in (0, 3):
        torch.testing.assert_close(views[i].state.state, calls[i]["state_new"])
    for i in (1, 2, 4):
        g = calls[i]["ttt3r_gate"][..., None]
        assert g.shape == (1, model.cfg.decoder.state_size, 1) and bool(((g > 0) & (g < 1)).all())
        expected = calls[i]["state_new"] * g + calls[i]["state_in"] * (1 - g)
        torch.testing.assert_close(views[i].state.state, expected)
        torch.testing.assert_close(calls[i]["state_in"], views[i - 1].state.state)


def test_recorder_removes_its_hooks(model):
    with Recorder(model) as recorder:
        next(run_stream(model, _frames(1)))
    assert {"enc_block0", "enc_out", "enc_pos", "dino_tokens", "det_logits", "dec_img_0", "state_new"} <= set(
        recorder.calls[0])
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    next(run_stream(model, _frames(1)))
    assert len(recorder.calls) == 1


def test_intrinsics_are_the_working_resolution_estimate(model):
    for v in run_stream(model, _frames(2)):
        K = v.intrinsics
        assert K.shape == (3, 3)
        torch.testing.assert_close(K, working_intrinsics_from_pointmap(v.output.pts3d_self)[0])
        assert K[0, 2].item() == 48 // 2 and K[1, 2].item() == 32 // 2  # (W // 2, H // 2) of the 32x48 frames
        assert K[0, 0].item() == K[1, 1].item() >= 0


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
