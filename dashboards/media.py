"""Source frames on demand: find one frame of a video the dataset names, decode it with PyAV, return a JPEG.

The dashboard opens only the ``source_uri`` of a video the catalog holds, through `storage.media` (the module the
pipeline reads videos with: a local path, ``file://`` or any location `storage.fs.open_location` resolves, such as
``s3://``; remote objects are read through a seekable file, never downloaded whole). A frame is found by its
presentation time: seek to the keyframe before it, decode forward to the frame whose time is nearest to
``timestamp_s``, show it as the pipeline saw it (`storage.media.frame_rgb`: display rotation applied, so the stored
``*_src_px`` intrinsics fit), shrink it to at most ``MAX_SIDE`` pixels and encode it as JPEG (PyAV's mjpeg encoder).
Every failure is a `storage.errors.MediaError` whose message says why (shown on the video page).
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np

from storage import media
from storage.errors import MediaError

MAX_SIDE = 1280  # longest side of the JPEG sent to the browser (the overlay scales it back to source pixels)
JPEG_QUALITY = {"qmin": "2", "qmax": "5"}  # mjpeg quantiser range: small is sharp
SEEK_BUFFER = 64 << 10  # bytes per read of a remote object (one ranged GET on S3) while seeking to a frame


def check_source(uri: str) -> media.Location:
    """The location of a readable, non-empty video file at `uri`; MediaError (with the reason) otherwise."""
    return media.locate(uri)


def _nearest_frame(container, timestamp_s: float):
    """The decoded frame whose time (from the stream start) is nearest to `timestamp_s`."""
    import av

    stream = container.streams.video[0]
    base = stream.time_base or Fraction(1, 1000)
    start = float(stream.start_time * base) if stream.start_time is not None else 0.0
    target = start + timestamp_s
    rate = float(stream.average_rate or 30)
    if timestamp_s > 0:
        try:
            container.seek(int(target / base), stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            container.seek(0)
    best, best_gap = None, float("inf")
    for frame in container.decode(stream):
        t = float(frame.time) if frame.time is not None else target
        gap = abs(t - target)
        if gap < best_gap:
            best, best_gap = frame, gap
        if t > target + 0.5 / rate:
            break
    if best is None:
        raise MediaError(f"no frame decoded near t={timestamp_s:.3f} s")
    return best


def _to_jpeg(rgb: np.ndarray) -> bytes:
    import av

    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    out_w, out_h = max(2, round(w * scale) // 2 * 2), max(2, round(h * scale) // 2 * 2)
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = out_w, out_h, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = JPEG_QUALITY
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    packets = codec.encode(frame.reformat(width=out_w, height=out_h, format="yuvj420p")) + codec.encode(None)
    return bytes(packets[0])


@functools.lru_cache(maxsize=64)
def frame_jpeg(uri: str, timestamp_s: float) -> bytes:
    """JPEG of the frame of `uri` at `timestamp_s` seconds from the stream start, display rotation applied.
    Raises MediaError when the file cannot be read or decoded."""
    import av

    with media.open_container(check_source(uri), SEEK_BUFFER) as container:
        try:
            rgb = media.frame_rgb(_nearest_frame(container, timestamp_s))
        except av.FFmpegError as err:
            raise MediaError(f"{uri} could not be decoded at t={timestamp_s:.3f} s: {media.short_error(err)}") \
                from None
        except OSError as err:
            raise media.read_failure(uri, err) from err
    return _to_jpeg(rgb)
