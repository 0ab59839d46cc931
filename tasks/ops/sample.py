"""A small synthetic sample video (generated, so there is no licence question): figures walking over a floor.

Used by the README demo and the tests. Deterministic for a given seed; encoded with PyAV (libx264 by default).
"""

from __future__ import annotations

import os

import numpy as np


def sample_frames(n_frames: int = 48, width: int = 320, height: int = 180, seed: int = 0, people: int = 3):
    """Yield (H, W, 3) uint8 frames: a textured floor and wall, `people` figures walking across, a slow pan."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = height * 0.45
    texture = rng.integers(0, 40, (height, width, 1)).astype(np.float32)
    colours = rng.integers(40, 230, (people, 3))
    starts = rng.uniform(0.1, 0.9, people) * width
    speeds = rng.uniform(-2.5, 2.5, people)
    depths = rng.uniform(0.6, 1.0, people)  # apparent size
    for t in range(n_frames):
        pan = 1.5 * t
        wall = 150 + 40 * np.sin((xx + pan) / 23.0)[..., None] + texture * 0.5
        floor = 90 + 30 * ((((xx + pan) // 24 + (yy // 12)) % 2)[..., None]) + texture
        img = np.where((yy < horizon)[..., None], wall * [0.9, 0.9, 1.0], floor * [0.8, 0.7, 0.6])
        for p in range(people):
            cx = (starts[p] + speeds[p] * t) % width
            s = depths[p] * height * 0.5
            feet = horizon + s * 0.9
            body = (np.abs(xx - cx) < s * 0.12) & (yy > feet - s * 0.75) & (yy < feet)
            head = (xx - cx) ** 2 + (yy - (feet - s * 0.85)) ** 2 < (s * 0.1) ** 2
            legs = (np.abs(np.abs(xx - cx) - s * 0.06 * (1 + np.sin(t / 2 + p))) < s * 0.04) & (yy >= feet - s * 0.35)
            img[body | legs] = colours[p]
            img[head] = [225, 190, 160]
        yield np.clip(img, 0, 255).astype(np.uint8)


def make_sample_video(path: str | os.PathLike, n_frames: int = 48, width: int = 320, height: int = 180,
                      fps: int = 12, seed: int = 0, codec: str = "libx264", rotation: int = 0) -> str:
    """Write the sample video to `path` (mp4) and return the path."""
    import av

    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23", "g": str(fps)}
        if rotation:
            stream.set_display_rotation(rotation)
        for img in sample_frames(n_frames, width, height, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return os.fspath(path)
