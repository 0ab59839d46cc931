"""Video fixtures made on the fly with PyAV (nothing binary is committed), and the listing helper of the discovery
tests."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest


def write_video(path, frames, *, fps=12, codec="libx264", pix_fmt="yuv420p", pts_ms=None, rotation=0, options=None):
    """Encode (H, W, 3) uint8 frames. `pts_ms` gives explicit presentation times (variable frame rate)."""
    import av

    frames = list(frames)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=1000 if pts_ms is not None else fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        if options:
            stream.options = options
        if pts_ms is not None:
            stream.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def numbered_frames(n, h=48, w=64):
    """Frame i is filled with value 4*i (lossless codecs give it back exactly), with a white top-left marker."""
    for i in range(n):
        img = np.full((h, w, 3), 4 * i % 256, np.uint8)
        img[:6, :6] = 255
        yield img


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory):
    from tasks.ops.sample import make_sample_video

    return make_sample_video(tmp_path_factory.mktemp("videos") / "sample.mp4", n_frames=24, width=192, height=108)


@pytest.fixture(scope="session")
def make_video():
    """`make_video(path, frames, **kw)`: encode frames with PyAV (see `write_video`)."""
    return write_video


@pytest.fixture(scope="session")
def frames_numbered():
    """`frames_numbered(n, h, w)`: frames filled with 4*i and a white corner marker."""
    return numbered_frames


@pytest.fixture(scope="session")
def tiny_model():
    """The untrained tiny network (the parity weights), loaded once per session."""
    from human3r.weights import load_model

    return load_model("untrained:tiny")


@pytest.fixture(scope="session")
def list_videos():
    """`list_videos(sources)`: the locations `tasks.reconstruction.discover.list_sources` lists, without sizes and
    times."""
    from tasks.reconstruction.discover import list_sources

    return lambda sources: [item.uri for item in list_sources(sources)]
