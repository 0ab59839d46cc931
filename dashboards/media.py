"""Source frames on demand: find one frame of a video the dataset names, decode it with PyAV, return a JPEG.

The dashboard opens only the ``source_uri`` of a video the catalog holds (a local path, ``file://`` or any location
`storage.fs.open_location` resolves, such as ``s3://``; remote objects are read through a seekable file, never
downloaded whole). A frame is found by its presentation time: seek to the keyframe before it, decode forward to the
frame whose time is nearest to ``timestamp_s``, apply the display rotation as the pipeline did (so the stored
``*_src_px`` intrinsics fit), shrink it to at most ``MAX_SIDE`` pixels and encode it as JPEG (PyAV's mjpeg encoder).
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction

import numpy as np

from storage.errors import RootError
from storage.fs import open_location

MAX_SIDE = 1280  # longest side of the JPEG sent to the browser (the overlay scales it back to source pixels)
JPEG_QUALITY = {"qmin": "2", "qmax": "5"}  # mjpeg quantiser range: small is sharp


class SourceUnavailable(Exception):
    """The source video cannot be read here; the message says why (shown on the video page)."""


def _local_path(uri: str) -> str | None:
    if "://" not in uri:
        return uri
    return uri.removeprefix("file://") if uri.startswith("file://") else None


def check_source(uri: str) -> None:
    """Raise SourceUnavailable (with the reason) unless `uri` names a readable, non-empty file."""
    local = _local_path(uri)
    if local is not None:
        if not os.path.isfile(local):
            raise SourceUnavailable(f"{local} is not on this machine (moved, deleted, or another machine's path)")
        if not os.access(local, os.R_OK):
            raise SourceUnavailable(f"{local} is not readable by this user")
        return
    try:
        fs, path = open_location(uri)
        info = fs.get_file_info(path)
    except (RootError, OSError) as err:
        raise SourceUnavailable(f"{uri} cannot be opened here: {_short(err)}") from None
    if not info.size:
        raise SourceUnavailable(f"{uri} does not exist or is empty")


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


def _open(uri: str):
    """(container, file to close or None)."""
    import av

    local = _local_path(uri)
    file = None
    if local is None:
        fs, path = open_location(uri)
        file = fs.open_input_file(path)
    try:
        return av.open(local if file is None else file, metadata_errors="ignore"), file
    except av.FFmpegError as err:
        if file is not None:
            file.close()
        raise SourceUnavailable(f"{uri} is not a readable video: {_short(err)}") from None


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
        raise SourceUnavailable(f"no frame decoded near t={timestamp_s:.3f} s")
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
    Raises SourceUnavailable when the file cannot be read or decoded."""
    import av

    check_source(uri)
    container, file = _open(uri)
    try:
        with container:
            if not container.streams.video:
                raise SourceUnavailable(f"{uri} has no video stream")
            try:
                frame = _nearest_frame(container, timestamp_s)
                rgb = frame.to_ndarray(format="rgb24")
            except av.FFmpegError as err:
                raise SourceUnavailable(f"{uri} could not be decoded at t={timestamp_s:.3f} s: {_short(err)}") \
                    from None
            k = round((frame.rotation or 0) / 90) % 4
            return _to_jpeg(np.rot90(rgb, k) if k else rgb)
    finally:
        if file is not None:
            file.close()
