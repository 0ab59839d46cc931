"""Streaming decode with PyAV: metadata, frame selection, timestamps, rotation, bounded read-ahead."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tasks.errors import VideoError
from tasks.options import DecodeOptions
from tasks.reconstruction.decode import FrameReader, probe_video


@pytest.fixture(scope="module")
def lossless(tmp_path_factory, make_video, frames_numbered):
    return make_video(tmp_path_factory.mktemp("d") / "n.mkv", frames_numbered(30), fps=10, codec="ffv1",
                       pix_fmt="bgr0")


def test_probe_reads_header_facts(sample_video):
    p = probe_video(sample_video)
    assert (p.width, p.height, p.fps, p.frame_count, p.codec, p.rotation_deg) == (192, 108, 12.0, 24, "h264", 0)
    assert p.duration_s == pytest.approx(2.0)
    assert len(p.content_sha256) == 64 and p.video_id == p.content_sha256[:16]


def test_all_frames_exact_with_timestamps(lossless):
    with FrameReader(lossless) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(30))
    assert [f.timestamp_s for f in frames] == pytest.approx([i / 10 for i in range(30)])
    assert all(int(f.rgb[20, 20, 0]) == 4 * f.index for f in frames)
    assert reader.stats.frames_decoded == 30 and reader.stats.decode_errors == 0


@pytest.mark.parametrize("options, indices", [
    (DecodeOptions(stride=4), list(range(0, 30, 4))),
    (DecodeOptions(stride=3, max_frames=4), [0, 3, 6, 9]),
    (DecodeOptions(start_s=1.0, end_s=2.0), list(range(10, 20))),
    (DecodeOptions(start_s=0.95, end_s=2.05, stride=5), [10, 15, 20]),
])
def test_selection_keeps_stream_indices(lossless, options, indices):
    with FrameReader(lossless, options) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == indices
    assert all(int(f.rgb[20, 20, 0]) == 4 * f.index for f in frames)  # the right pixels for each index


def test_variable_frame_rate_timestamps(tmp_path, make_video, frames_numbered):
    pts = [0, 40, 100, 110, 300, 1000]
    path = make_video(tmp_path / "vfr.mkv", frames_numbered(6), codec="ffv1", pix_fmt="bgr0", pts_ms=pts)
    with FrameReader(path) as reader:
        got = [f.timestamp_s for f in reader]
    assert got == pytest.approx([t / 1000 for t in pts])


@pytest.mark.parametrize("rotation, k", [(90, 1), (-90, 3), (180, 2)])
def test_display_rotation_is_applied(tmp_path, make_video, frames_numbered, rotation, k):
    raw = list(frames_numbered(3, h=48, w=64))
    path = make_video(tmp_path / "r.mkv", raw, codec="ffv1", pix_fmt="bgr0", rotation=rotation)
    p = probe_video(path)
    assert p.rotation_deg % 360 == rotation % 360
    assert (p.width, p.height) == ((48, 64) if rotation % 180 else (64, 48))
    with FrameReader(path) as reader:
        frames = list(reader)
    np.testing.assert_array_equal(frames[1].rgb, np.rot90(raw[1], k))


def test_read_ahead_is_bounded(lossless):
    reader = FrameReader(lossless, DecodeOptions(queue_size=3))
    it = iter(reader)
    next(it)
    time.sleep(0.5)  # the producer had time to decode everything, but may only run a few frames ahead
    assert reader.stats.frames_kept <= 1 + 3 + 1
    reader.close()
    assert not reader._thread.is_alive()


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="stride"):
        DecodeOptions(stride=0)
    with pytest.raises(ValueError, match="must come after the start"):
        DecodeOptions(start_s=2, end_s=1)


def test_errors_name_the_stage(tmp_path):
    with pytest.raises(VideoError) as info:
        probe_video(tmp_path / "missing.mp4")
    assert info.value.stage == "probe" and "no such file" in str(info.value)
