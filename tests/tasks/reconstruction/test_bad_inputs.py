"""A corpus of bad inputs: each becomes one `failures` row with a one-line reason; the good videos go on."""

from __future__ import annotations

import json
import os
from fractions import Fraction

import numpy as np
import pytest

from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.writer import read_failures
from tasks.identity import RunIdentity
from tasks.ops.sample import sample_frames
from tasks.options import DecodeOptions, ReconstructOptions
from tasks.reconstruction.video import reconstruct_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _garbage_packets(path):
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("h264", rate=10)
        s.width, s.height, s.pix_fmt, s.time_base = 64, 48, "yuv420p", Fraction(1, 10)
        for i in range(10):
            p = av.Packet(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
            p.stream, p.pts, p.dts, p.time_base = s, i, i, Fraction(1, 10)
            c.mux(p)


def _audio_only(path):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)


def _corrupt_packets(path, good):
    data = bytearray(open(good, "rb").read())
    rng = np.random.default_rng(0)
    for i in rng.integers(2000, len(data), len(data) // 30):
        data[i] = rng.integers(0, 256)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, make_video, sample_video):
    d = tmp_path_factory.mktemp("bad")
    good_mkv = make_video(d / "good.mkv", sample_frames(24, 192, 108), fps=12)
    (d / "zero_bytes.mp4").write_bytes(b"")
    (d / "random_bytes.mp4").write_bytes(np.random.default_rng(1).bytes(65536))
    (d / "text.mp4").write_text("this is not a video\n")
    (d / "truncated.mp4").write_bytes(open(sample_video, "rb").read()[: os.path.getsize(sample_video) // 2])
    (d / "folder.mp4").mkdir()
    _audio_only(d / "audio_only.m4a")
    _garbage_packets(d / "garbage_packets.mkv")
    _corrupt_packets(d / "corrupt_packets.mkv", good_mkv)
    make_video(d / "absurd_size.mkv", [np.zeros((8208, 16, 3), np.uint8)] * 2, codec="ffv1", pix_fmt="bgr0")
    make_video(d / "degenerate_aspect.mkv", [np.zeros((8, 2000, 3), np.uint8)] * 2, codec="ffv1", pix_fmt="bgr0")
    kinds = {
        "zero_bytes": (d / "zero_bytes.mp4", "probe", "empty"),
        "missing": (d / "missing.mp4", "probe", "no such file"),
        "folder": (d / "folder.mp4", "probe", "folder"),
        "random_bytes": (d / "random_bytes.mp4", "probe", "not a readable video"),
        "text": (d / "text.mp4", "probe", "not a readable video"),
        "truncated": (d / "truncated.mp4", "probe", "not a readable video"),
        "audio_only": (d / "audio_only.m4a", "probe", "no video stream"),
        "garbage_packets": (d / "garbage_packets.mkv", "probe", "no decodable frame"),
        "corrupt_packets": (d / "corrupt_packets.mkv", "decode", "could not be decoded"),
        "absurd_size": (d / "absurd_size.mkv", "probe", "exceeds the limit"),
        "degenerate_aspect": (d / "degenerate_aspect.mkv", "probe", "cannot be processed"),
        "remote_url": ("ftp://example.invalid/clip.mp4", "probe", "unsupported location"),
    }
    return {"good": sample_video, "kinds": kinds}


OPTIONS = ReconstructOptions(decode=DecodeOptions(max_frames=3))


def test_every_bad_input_becomes_one_failure_row(corpus, tiny_model, tmp_path):
    root = open_root(tmp_path / "ds")
    kinds = corpus["kinds"]
    assert len(kinds) >= 10
    for name, (path, stage, reason) in kinds.items():
        summary = reconstruct_video(str(path), root, tiny_model, RunIdentity.of_network(tiny_model, OPTIONS))
        assert summary.status == "failed", name
        assert summary.stage == stage, (name, summary)
        assert reason in summary.message, (name, summary.message)
        assert "\n" not in summary.message
        assert summary.error_type == "VideoError", (name, summary.error_type)
    ok = reconstruct_video(corpus["good"], root, tiny_model, RunIdentity.of_network(tiny_model, OPTIONS))
    assert ok.status == "ok" and ok.frames == 3
    rows = {r[S.SOURCE_URI]: r for r in read_failures(root).to_pylist()}
    assert set(rows) == {str(p) for p, _, _ in kinds.values()}
    for path, stage, reason in kinds.values():
        row = rows[str(path)]
        assert row[S.STAGE] == stage and reason in row[S.MESSAGE] and row[S.ERROR_TYPE] == "VideoError"
    with open_catalog(root) as cat:  # only the good video's rows are visible
        assert cat.query("SELECT count(*) FROM frames").column(0)[0].as_py() == 3
        assert cat.query("SELECT count(DISTINCT video_id) FROM points").column(0)[0].as_py() == 1


def test_cli_goes_on_after_bad_videos_and_exits_1(corpus, tmp_path, human3r_cli):
    kinds = corpus["kinds"]
    paths = [kinds["text"][0], corpus["good"], kinds["degenerate_aspect"][0], kinds["zero_bytes"][0]]
    result = human3r_cli("reconstruct", *paths, "--out", tmp_path / "ds", "--checkpoint", "untrained:tiny",
                         "--max-frames", "2", "--points-per-frame", "50", code=1)
    assert "1 reconstructed, 0 skipped, 3 failed" in result.stdout
    assert "Traceback" not in result.stderr
    out = human3r_cli("query", "--root", tmp_path / "ds", "--format", "json",
                      "SELECT (SELECT count(*) FROM frames) AS f, (SELECT count(*) FROM failures) AS x")
    assert json.loads(out.stdout) == [{"f": 2, "x": 3}]
