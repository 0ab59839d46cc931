"""A live camera in this process, on a file replayed at its frame rate (a real PyAV source, paced like a camera),
with the model slowed down: the decoder never waits, the frames the model skips are counted everywhere they are
reported, and the session's segments hold exactly what one uninterrupted `run_stream` over the processed frames
gives (state, tracks and world frame carried across segments); the optional Rerun stream draws every frame."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from storage import schema as S
from storage.catalog import open_catalog
from storage.dataset import init_dataset
from storage.fs import open_root

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FPS, N_FRAMES, SLOW_S = 12, 36, 0.35  # a 3 s clip at 12 fps; every forward takes at least SLOW_S


def query(root, sql, params=None) -> list[dict]:
    with open_catalog(root) as cat:
        return cat.query(sql, params).to_pylist()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from tasks.ops.sample import make_sample_video

    return make_sample_video(tmp_path_factory.mktemp("live") / "clip.mp4", n_frames=N_FRAMES, width=192,
                             height=108, fps=FPS)


def _collect(url: str, into: list, connected: threading.Event) -> None:
    from websockets.sync.client import connect

    with connect(url) as ws:
        connected.set()
        try:
            for text in ws:
                into.append(json.loads(text))
        except Exception:  # noqa: BLE001 - the feed closed
            return


def test_slow_model_drops_frames_counts_them_and_keeps_the_session_whole(tmp_path, clip, tiny_model):
    from human3r.stream import run_stream
    from tasks.identity import RunIdentity
    from tasks.live.camera import LiveCamera, checked_source
    from tasks.live.options import FeedOptions, LiveOptions
    from tasks.options import ConvertOptions, ReconstructOptions
    from tasks.reconstruction.convert import frame_rows, world_anchor
    from tasks.reconstruction.decode import FrameReader
    from tasks.reconstruction.video import tagged_frames

    root = init_dataset(open_root(tmp_path / "ds"))
    recording = tmp_path / "live.rrd"
    options = LiveOptions(realtime=True, segment_seconds=1.0, status_seconds=0.5, feed=FeedOptions(port=0),
                          rerun=str(recording))
    rows = ReconstructOptions(convert=ConvertOptions(points_per_frame=50, conf_threshold=1.0))
    identity = RunIdentity.of_network(tiny_model, rows)
    camera = LiveCamera(checked_source(clip, options), root, tiny_model, identity, options=options, camera="replay")
    messages, connected = [], threading.Event()
    threading.Thread(target=_collect, args=(camera.feed.url, messages, connected), daemon=True).start()
    assert connected.wait(10)
    hook = tiny_model.register_forward_pre_hook(lambda *_: time.sleep(SLOW_S))  # a slow model
    try:
        started = time.monotonic()
        camera.run()  # until the file ends
        took = time.monotonic() - started
    finally:
        hook.remove()
    time.sleep(0.3)
    summary = camera.summary()

    # the decoder kept the file's pace although every forward took longer than a frame interval
    decoded = np.array(camera.source.decode_times)
    assert summary.frames_decoded == len(decoded) == N_FRAMES
    assert np.diff(decoded).max() < SLOW_S * 0.7, np.diff(decoded).round(3)
    assert decoded[-1] - decoded[0] == pytest.approx((N_FRAMES - 1) / FPS, rel=0.15)
    # what it could not process was dropped, and counted the same everywhere
    assert 0 < summary.frames_processed < N_FRAMES / 2 and took < N_FRAMES / FPS + 3
    assert summary.frames_dropped == N_FRAMES - summary.frames_processed > 0
    runs = query(root, f"SELECT * FROM runs ORDER BY {S.SEGMENT_INDEX}")
    assert sum(r[S.N_FRAMES_DROPPED] for r in runs) == summary.frames_dropped
    assert sum(r[S.FRAME_COUNT] for r in runs) == N_FRAMES
    status = query(root, "SELECT * FROM live_status")[0]
    assert status[S.FRAMES_DROPPED] == summary.frames_dropped and status[S.STATE] == "stopped"
    assert status[S.FRAMES_PROCESSED] == summary.frames_processed and status[S.SEGMENTS_COMMITTED] == len(runs)
    assert len(messages) == summary.frames_processed  # one message per processed frame
    assert messages[-1]["dropped_total"] == summary.frames_dropped
    assert str(summary.frames_dropped) in summary.line

    # one session, cut into consecutive segments of ~1 s of stream
    assert len(runs) >= 2 and [r[S.SEGMENT_INDEX] for r in runs] == list(range(len(runs)))
    assert len({r[S.SESSION_ID] for r in runs}) == 1 and all(r[S.CAMERA] == "replay" for r in runs)
    session = query(root, "SELECT * FROM sessions")[0]
    assert session[S.N_SEGMENTS] == len(runs) and session[S.MISSING_SEGMENTS] == 0
    assert session[S.VIDEO_IDS] == [r[S.VIDEO_ID] for r in runs]
    assert session[S.N_FRAMES] == summary.frames_processed

    # the segments hold what one uninterrupted stream over the processed frames gives: state, tracks, world frame
    frames = query(root, f"SELECT * FROM frames ORDER BY {S.FRAME_IDX}")
    humans = query(root, f"SELECT * FROM humans ORDER BY {S.FRAME_IDX}, {S.TRACK_ID}")
    kept = [f[S.FRAME_IDX] for f in frames]
    assert [m[S.FRAME_IDX] for m in messages] == kept  # the feed is the dataset, frame for frame
    with FrameReader(clip) as reader:
        rgb = {d.index: d.rgb for d in reader}
    decoded = [SimpleNamespace(index=i, timestamp_s=i / FPS, rgb=rgb[i]) for i in kept]
    anchor = None
    for f, view in zip(frames, run_stream(tiny_model, tagged_frames(decoded, tiny_model.cfg)), strict=True):
        anchor = world_anchor(view) if anchor is None else anchor
        want = (anchor @ view.c2w.to(torch.float64)).numpy().reshape(16)
        np.testing.assert_allclose(f[S.CAM_TO_WORLD], want, atol=1e-4)
        tag = view.tag
        expected = frame_rows(view, frame_idx=tag.index, timestamp_s=tag.timestamp_s, image=tag.image,
                              geometry=tag.geometry, body_model=None, options=rows.convert, anchor=anchor)
        people = expected[S.HUMANS.name]
        order = np.argsort(people[S.TRACK_ID])
        mine = [h for h in humans if h[S.FRAME_IDX] == f[S.FRAME_IDX]]
        assert [h[S.TRACK_ID] for h in mine] == people[S.TRACK_ID][order].tolist()
        np.testing.assert_allclose(np.reshape([h[S.HEAD_WORLD_M] for h in mine], (-1, 3)),
                                   people[S.HEAD_WORLD_M][order].reshape(-1, 3), atol=1e-4)
    assert frames[0][S.CAM_TO_WORLD] == pytest.approx(np.eye(4).reshape(16).tolist(), abs=1e-6)
    ids_by_segment = [{h[S.TRACK_ID] for h in humans if h[S.VIDEO_ID] == r[S.VIDEO_ID]} for r in runs]
    assert any(a & b for a, b in zip(ids_by_segment, ids_by_segment[1:]))  # people keep their ids across segments
    times = [f[S.TIMESTAMP_S] for f in frames]
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))

    # the optional Rerun stream (to a file here; to a viewer with its URL) drew every processed frame
    from rerun.chunk import RrdReader

    entities: dict[str, set] = {}
    for chunk in RrdReader(str(recording)).store().stream().to_chunks():
        if not chunk.is_static:
            entities.setdefault(chunk.entity_path, set()).update(chunk.to_record_batch().column("frame").to_pylist())
    assert entities["/world/camera"] == entities["/world/people/heads"] == set(kept)
