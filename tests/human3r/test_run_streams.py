"""Batched streams: several videos in one forward (`run_streams`, `Human3R.forward` with a list of states) give
each video what `run_stream` gives it alone; and the optional outputs can be left out without changing the rest."""

from __future__ import annotations

import pytest
import torch

from human3r import Frame, run_stream, run_streams
from human3r.errors import ConfigError, InputShapeError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Batched matmuls may block (and so round) differently from single ones: measured worst difference 1.1e-5 on these
# cases; 1e-4 absolute + 1e-4 relative is 10x that, and far below any real difference (a wrong state or a padding
# token that leaks shows at 1e-2 and more).
TOL = {"atol": 1e-4, "rtol": 1e-4}


def _black(like: Frame) -> Frame:
    """A frame in which the parity network finds nobody."""
    return Frame(torch.full_like(like.img, -1.0), torch.full_like(like.img_mhmr, -1.0))


def _assert_same_view(a, b) -> None:
    assert (a.index, a.view, a.duplicate, a.reset) == (b.index, b.view, b.duplicate, b.reset)
    oa, ob = a.output, b.output
    for name in ("pts3d_self", "conf_self", "pts3d_world", "conf_world", "rgb", "camera_pose", "human_mask",
                 "det_scores"):
        torch.testing.assert_close(getattr(ob, name), getattr(oa, name), **TOL, msg=name)
    ha, hb = oa.humans, ob.humans
    assert torch.equal(ha.track_id, hb.track_id) and torch.equal(ha.prompt_pos, hb.prompt_pos)
    for name in ("loc", "rotmat", "betas", "expression", "transl", "token"):
        torch.testing.assert_close(getattr(hb, name), getattr(ha, name), **TOL, msg=name)
    torch.testing.assert_close(b.c2w, a.c2w, **TOL)
    torch.testing.assert_close(b.intrinsics, a.intrinsics, **TOL)
    torch.testing.assert_close(b.state.state, a.state.state, **TOL)
    torch.testing.assert_close(b.state.mem, a.state.mem, **TOL)
    assert b.state.fresh == a.state.fresh and b.state.tracks.max_id == a.state.tracks.max_id


@pytest.mark.parametrize("ttt3r", [False, True])
def test_batched_streams_equal_one_at_a_time(parity_model, parity_frames, ttt3r):
    f = parity_frames
    videos = [
        f,                              # 5 frames, 3,3,3,3,2 people, reset after frame 1 (duplicate view at 2)
        f[1:4],                         # 3 frames, ends first, no reset
        [f[4], _black(f[0]), *f[:3]],   # 5 frames: 2 people, then nobody, then 3; reset after frames 2 and 5
        [_black(f[0]), f[3]],           # 2 frames, reset after every frame
    ]
    intervals = [2, None, 3, 1]
    alone = [list(run_stream(parity_model, v, use_ttt3r=ttt3r, reset_interval=r, include_duplicates=True))
             for v, r in zip(videos, intervals, strict=True)]
    together: list[list] = [[] for _ in videos]
    for k, view in run_streams(parity_model, videos, use_ttt3r=ttt3r, reset_interval=intervals,
                               include_duplicates=True):
        together[k].append(view)
    assert [len(v) for v in together] == [len(v) for v in alone] == [7, 3, 6, 4]
    counts = [[v.output.humans.count for v in views] for views in alone]
    assert counts[2][:2] == [2, 0] and counts[3][0] == 0  # steps mixing 3, 2 and 0 people: padded prompts
    for views_alone, views_together in zip(alone, together, strict=True):
        for a, b in zip(views_alone, views_together, strict=True):
            _assert_same_view(a, b)


def test_forward_with_a_list_of_states(parity_model, parity_frames):
    a, b = parity_frames[0], parity_frames[4]
    with torch.inference_mode():
        sa, sb = parity_model.initial_state(), parity_model.initial_state()
        single_a, _ = parity_model(a, sa)
        single_b, _ = parity_model(b, sb)
        outs, states = parity_model(Frame(torch.cat([a.img, b.img]), torch.cat([a.img_mhmr, b.img_mhmr])), [sa, sb])
        assert len(outs) == len(states) == 2 and not states[0].fresh
        torch.testing.assert_close(outs[0].pts3d_world, single_a.pts3d_world, **TOL)
        torch.testing.assert_close(outs[1].humans.transl, single_b.humans.transl, **TOL)
        assert outs[1].pts3d_world.shape[0] == 1 and outs[1].humans.count == 2
        with pytest.raises(InputShapeError, match="one State per video"):
            parity_model(a, [sa, sb])


def test_reset_interval_per_video_is_checked(parity_model, parity_frames):
    with pytest.raises(ConfigError, match="one per video"):
        next(run_streams(parity_model, [parity_frames, parity_frames], reset_interval=[2]))
    with pytest.raises(ConfigError, match="positive"):
        next(run_streams(parity_model, [parity_frames], reset_interval=[0]))


def test_optional_outputs_are_skipped_and_the_rest_unchanged(parity_model, parity_frames):
    head = parity_model.downstream_head
    calls = {"dpt_rgb": 0, "dpt_cross": 0, "mlp_msk": 0}
    hooks = [getattr(head, name).register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
             for name in calls]
    try:
        full = list(run_stream(parity_model, parity_frames, use_ttt3r=True, reset_interval=2))
        assert calls == {"dpt_rgb": 7, "dpt_cross": 7, "mlp_msk": 7}
        stored = list(run_stream(parity_model, parity_frames, use_ttt3r=True, reset_interval=2,
                                 outputs={"pts3d_world"}))
        assert calls == {"dpt_rgb": 7, "dpt_cross": 14, "mlp_msk": 7}  # neither the colour nor the mask head ran
        bare = list(run_stream(parity_model, parity_frames, outputs=()))
        assert calls["dpt_cross"] == 14  # no world-view branch either
    finally:
        for h in hooks:
            h.remove()
    for a, b in zip(full, stored, strict=True):
        assert b.output.rgb is None and b.output.human_mask is None
        for name in ("pts3d_self", "conf_self", "pts3d_world", "conf_world", "camera_pose", "det_scores"):
            assert torch.equal(getattr(a.output, name), getattr(b.output, name)), name
        assert torch.equal(a.output.humans.transl, b.output.humans.transl)
        assert torch.equal(a.output.humans.track_id, b.output.humans.track_id)
        assert torch.equal(a.c2w, b.c2w) and torch.equal(a.intrinsics, b.intrinsics)
    assert bare[0].output.pts3d_world is None and bare[0].output.conf_world is None
    assert torch.equal(bare[0].output.pts3d_self, full[0].output.pts3d_self)
    with pytest.raises(ConfigError, match="unknown optional outputs"):
        next(run_stream(parity_model, parity_frames, outputs={"depth"}))


def test_prefetch_in_a_thread_gives_the_same_views(parity_model, parity_frames):
    inline = list(run_stream(parity_model, parity_frames, reset_interval=2))
    ahead = list(run_stream(parity_model, parity_frames, reset_interval=2, prefetch=2))
    assert len(ahead) == len(inline) == 5
    for a, b in zip(inline, ahead, strict=True):
        assert torch.equal(a.output.pts3d_world, b.output.pts3d_world) and torch.equal(a.c2w, b.c2w)

    def broken():
        yield parity_frames[0]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(run_stream(parity_model, broken(), prefetch=2))
