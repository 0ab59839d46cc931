"""Video files -> frames, streamed with PyAV: probe, hash, and a background decoder feeding a bounded queue.

No temporary images: frames go straight from the decoder to the model, at most `queue_size` of them in memory.
Timestamps are the stream's own presentation times (variable frame rate kept); the display rotation is applied;
stride, frame cap and a time window select frames without changing their indices (`frame_idx` always counts every
decoded frame of the stream from 0). Every way a file can be unusable raises `VideoError` with a one-line reason.

Locating and opening a video, the display rotation and the classification of read errors are `storage.media`'s
(shared with the dashboard); its errors become `VideoError` here (`tasks.errors.video_errors`), a transient one a
`TransientReadError`. Videos on object storage (``s3://bucket/key``) are read through a seekable file object, never
downloaded whole: the probe fetches the header and the first frame (`PROBE_BUFFER` bytes per read), the decoder
streams the object (`DECODE_BUFFER` bytes per read), and the hash streams it once.

A probe records facts only (header, hash): whether the video may be processed (`DecodeOptions.max_side`, the
network's input size) is decided from them by whoever plans the run (`tasks.reconstruction.plan`).
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from collections.abc import Iterator

import numpy as np

from storage import media
from storage.errors import MediaError
from storage.schema import video_id_for
from tasks.errors import VideoError, video_error, video_errors
from tasks.options import DecodeOptions

PROBE_BUFFER = 64 << 10  # bytes per read of a remote object while probing (header + first frame)
DECODE_BUFFER = 1 << 20  # bytes per read (one ranged GET on S3) of a remote object while decoding


@dataclasses.dataclass(frozen=True)
class VideoProbe:
    """What a video is, from its header and first frame (cheap)."""

    path: str  # as given (the source_uri of its rows and failures)
    size_bytes: int
    content_sha256: str
    width: int  # displayed (after rotation)
    height: int
    rotation_deg: int  # counter-clockwise rotation applied for display
    fps: float | None
    duration_s: float | None
    frame_count: int  # from the container; 0 when it does not say
    codec: str

    @property
    def video_id(self) -> str:
        return video_id_for(self.content_sha256)


@dataclasses.dataclass(frozen=True)
class DecodedFrame:
    index: int  # 0-based index among all decoded frames of the stream
    timestamp_s: float  # presentation time, seconds from the stream start
    rgb: np.ndarray  # (H, W, 3) uint8, display rotation applied


@dataclasses.dataclass
class DecodeStats:
    packets: int = 0
    decode_errors: int = 0
    frames_decoded: int = 0
    frames_kept: int = 0


def probe_video(path: str | os.PathLike) -> VideoProbe:
    """Header facts, the content hash and the display rotation (from the first frame). Raises `VideoError`
    (`TransientReadError` when the bytes could not be fetched this time)."""
    with video_errors("probe"):
        location = media.locate(path)
        try:
            facts = _read_header(location)
        except OSError as err:  # a remote read failing midway (PyAV re-raises the file object's error)
            raise media.read_failure(location.uri, err) from err
        sha256 = location.sha256()
    return VideoProbe(path=os.fspath(path), size_bytes=location.size_bytes, content_sha256=sha256, **facts)


def _read_header(location: media.Location) -> dict:
    """Frame size after rotation, rate, duration, frame count and codec, from the header and the first frame."""
    import av

    with media.open_container(location, PROBE_BUFFER) as container:
        stream = container.streams.video[0]
        rotation = 0
        try:
            for frame in container.decode(stream):
                rotation = media.display_rotation(frame)
                break
            else:
                raise VideoError("the video stream holds no decodable frame")
        except av.FFmpegError as err:
            raise VideoError(f"first frame cannot be decoded ({media.short_error(err)})") from err
        w, h = (stream.height, stream.width) if rotation % 180 else (stream.width, stream.height)
        if not w or not h:
            raise VideoError(f"video stream has no frame size ({w}x{h})")
        fps = float(stream.average_rate) if stream.average_rate else None
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1e6
        codec = stream.codec_context.name
        frame_count = int(stream.frames or 0)
    return dict(width=w, height=h, rotation_deg=rotation, fps=fps, duration_s=duration, frame_count=frame_count,
                codec=codec)


class FrameReader:
    """Iterate the kept frames of a video; a background thread decodes up to `queue_size` frames ahead.

        with FrameReader(path, options) as reader:
            for frame in reader:          # DecodedFrame
                ...
            reader.stats                  # packets, decode errors, frames decoded / kept

    Raises `VideoError` (stage "decode") from the iteration when the file turns out unreadable, has no frames, or
    has more undecodable packets than `max_error_ratio` allows.
    """

    _DONE = object()

    def __init__(self, path: str | os.PathLike, options: DecodeOptions = DecodeOptions()):
        with video_errors("probe"):
            self.location = media.locate(path)
        self.options = options
        self.stats = DecodeStats()
        self._queue: queue.Queue = queue.Queue(maxsize=options.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------------ producer
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        import av

        opts, stats = self.options, self.stats
        try:
            with media.open_container(self.location, DECODE_BUFFER) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
                index = -1
                for packet in container.demux(stream):
                    if self._stop.is_set():
                        return
                    if packet.size:
                        stats.packets += 1
                    try:
                        frames = packet.decode()
                    except av.FFmpegError:
                        stats.decode_errors += 1
                        continue
                    for frame in frames:
                        index += 1
                        stats.frames_decoded += 1
                        t = (float(frame.time) - start) if frame.time is not None else index / float(
                            stream.average_rate or 30)
                        if opts.start_s is not None and t < opts.start_s:
                            continue
                        if opts.end_s is not None and t >= opts.end_s:
                            return self._finish()
                        if index % opts.stride:
                            continue
                        rgb = media.frame_rgb(frame)
                        stats.frames_kept += 1
                        if not self._put(DecodedFrame(index, t, rgb)):
                            return
                        if opts.max_frames is not None and stats.frames_kept >= opts.max_frames:
                            return self._finish()
            self._finish()
        except VideoError as err:
            self._put(err)
        except MediaError as err:
            self._put(video_error(err, "decode"))
        except OSError as err:  # a remote read failing midway: transient or not (storage.media.is_transient)
            self._put(video_error(media.read_failure(self.location.uri, err), "decode"))
        except Exception as err:  # noqa: BLE001 - any decoder failure becomes the consumer's VideoError
            self._put(VideoError(f"{type(err).__name__}: {media.short_error(err)}", stage="decode"))
        finally:
            self._put(self._DONE)

    def _finish(self) -> None:
        stats, opts = self.stats, self.options
        if stats.frames_decoded == 0:
            raise VideoError(f"no frame could be decoded ({stats.decode_errors} bad packets of {stats.packets})",
                             stage="decode")
        if stats.packets and stats.decode_errors / stats.packets > opts.max_error_ratio:
            raise VideoError(f"{stats.decode_errors} of {stats.packets} packets could not be decoded "
                             f"(limit {opts.max_error_ratio:.0%}); the file is corrupt", stage="decode")

    # ------------------------------------------------------------------------------------------------ consumer
    def __iter__(self) -> Iterator[DecodedFrame]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._decode, name=f"decode:{self.location.name}", daemon=True)
            self._thread.start()
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, VideoError):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
