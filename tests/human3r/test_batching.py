"""SharedModel: threads that each stream one video through a shared model get their own results, in batches."""

from __future__ import annotations

import threading

import pytest
import torch

from human3r import run_stream
from human3r.batching import SharedModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_threads_streaming_through_a_shared_model_get_their_own_results(parity_model, parity_frames):
    f = parity_frames
    videos = [f, f[1:4], f[::-1]]  # different lengths, people counts and (below) resets
    intervals = [2, None, 3]
    alone = [list(run_stream(parity_model, v, use_ttt3r=True, reset_interval=r)) for v, r in zip(videos, intervals)]
    shared = SharedModel(parity_model, wait_s=5.0)
    got: list[list] = [[] for _ in videos]
    errors: list[BaseException] = []
    start = threading.Barrier(len(videos))

    def stream(k: int) -> None:
        try:
            with shared.member():
                start.wait()
                got[k] = list(run_stream(shared, videos[k], use_ttt3r=True, reset_interval=intervals[k]))
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            errors.append(err)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(len(videos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    views = sum(len(v) for v in alone) + 3  # kept views plus the reset duplicates (2 in video 0, 1 in video 2)
    assert shared.batches < views  # steps of different videos did share forwards
    for a_views, b_views in zip(alone, got, strict=True):
        assert len(a_views) == len(b_views)
        for a, b in zip(a_views, b_views, strict=True):
            torch.testing.assert_close(b.output.pts3d_world, a.output.pts3d_world, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(b.c2w, a.c2w, atol=1e-4, rtol=1e-4)
            assert torch.equal(b.output.humans.track_id, a.output.humans.track_id)


def test_a_lone_caller_is_not_kept_waiting(parity_model, parity_frames):
    shared = SharedModel(parity_model, wait_s=30.0)  # no member: nothing to wait for
    views = list(run_stream(shared, parity_frames[:2]))
    assert len(views) == 2 and shared.batches == 2
    assert shared.cfg is parity_model.cfg


def test_an_error_reaches_the_caller(parity_model, parity_frames):
    class Broken:
        def __call__(self, frame, states, **kwargs):
            raise RuntimeError("out of memory")

    shared = SharedModel(Broken())
    with pytest.raises(RuntimeError, match="out of memory"):
        shared(parity_frames[0], parity_model.initial_state())
    assert shared.batches == 1 and not shared._running
