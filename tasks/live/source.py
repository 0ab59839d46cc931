"""A live source: what SOURCE may be, opening it with PyAV at low latency, and the decoder thread that reads it,
reopens it with back-off when it drops, and hands frames to the model through a `NewestQueue`.

SOURCE is a network stream FFmpeg opens (``rtsp://``, ``rtmp://``, ``srt://``, ``udp://``, ``tcp://``, ``rtp://``,
``http(s)://`` including HLS playlists), a V4L2 device (``/dev/video0``), or a video file replayed at its own frame
rate (``realtime``: tests and demos). Anything else is refused before anything starts (`SourceError`, exit code 2),
as is a source that cannot be opened the first time (unreachable host, refused connection, not a stream) or that
carries no video.

The decoder thread never waits for the model: it decodes every packet, stamps each frame with its arrival time
(monotonic and wall clock) and puts it into the queue, which drops the oldest when the model is behind. A frame is
converted to RGB only when the model takes it (dropped frames cost a decode, not a conversion). When the stream
ends or stalls for `read_timeout_s` it puts a :class:`Disconnected` event and reopens it, waiting
`reconnect_initial_s`, then twice as long after each failed attempt, up to `reconnect_max_s`; a file's end is an
:class:`Ended` event instead. What the dataset records of the source is :attr:`SourceSpec.public_uri`, without
credentials.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from storage import media
from tasks.errors import SourceError
from tasks.live.framequeue import NewestQueue
from tasks.live.options import LiveOptions

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "rtp", "http", "https")
DEVICE = re.compile(r"^/dev/video\d+$")
SECRET_KEYS = re.compile(r"pass|token|secret|key|auth|sig|cred", re.IGNORECASE)  # query values never recorded
# Open a network stream at low latency: read little before the first frame (the probe's packets are kept and
# decoded, not discarded), flag low delay to the decoders. RTSP over TCP: no lost UDP packets on a busy network.
STREAM_OPTIONS = {"probesize": "131072", "analyzeduration": "200000", "flags": "low_delay"}
SUPPORTED = ("rtsp://, rtmp://, srt://, udp://, tcp://, rtp://, http(s):// (HLS), a V4L2 device (/dev/video0), "
             "or a video file with --realtime")


# ------------------------------------------------------------------------------------------------ what SOURCE is
@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A source, classified."""

    uri: str  # as given (credentials included: never stored)
    kind: str  # 'stream' (network), 'device' (V4L2) or 'file' (replayed in real time)

    @property
    def public_uri(self) -> str:
        """The source without credentials: what the dataset and the logs record."""
        return public_uri(self.uri)

    @property
    def name(self) -> str:
        """A default camera name: host and port of a stream, the device or file name."""
        if self.kind == "stream":
            parts = urlsplit(self.uri)
            name = f"{parts.hostname or 'stream'}{'-' + str(parts.port) if parts.port else ''}"
        else:
            name = media.file_name(self.uri).rsplit(".", 1)[0] or "camera"
        return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:64].lstrip("-._") or "camera"


def public_uri(uri: str) -> str:
    """`uri` with the user and password removed and secret-looking query values masked."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, "***" if SECRET_KEYS.search(k) else v) for k, v in parse_qsl(parts.query, True)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_source(text: str, *, realtime: bool = False) -> SourceSpec:
    """Classify SOURCE, or SourceError saying what a source may be."""
    if DEVICE.match(text):
        return SourceSpec(text, "device")
    if "://" in text and not text.startswith("file://"):
        scheme = text.split("://", 1)[0].lower()
        if scheme not in STREAM_SCHEMES:
            raise SourceError(f"unsupported source {public_uri(text)!r} (scheme {scheme}://): give {SUPPORTED}")
        if not urlsplit(text).netloc:
            raise SourceError(f"source {public_uri(text)!r} names no host; e.g. rtsp://camera.local:554/stream")
        return SourceSpec(text, "stream")
    path = text.removeprefix("file://")
    if not os.path.exists(path):
        raise SourceError(f"no such file or stream: {text!r}; give {SUPPORTED}")
    if not os.path.isfile(path):
        raise SourceError(f"{text!r} is a folder, not a stream; give {SUPPORTED}")
    if not realtime:
        raise SourceError(f"{text!r} is a file, not a stream: add --realtime to replay it at its frame rate, or use "
                          "`human3r reconstruct` for files")
    return SourceSpec(path, "file")


# ------------------------------------------------------------------------------------------------ events and frames
@dataclasses.dataclass(frozen=True)
class StreamInfo:
    """What an open connection says about its video."""

    codec: str
    width: int
    height: int
    fps: float | None  # the stream's average rate, when it says


@dataclasses.dataclass(frozen=True)
class Connected:
    connection: int  # 1, 2, ...: the n-th time the source was opened
    info: StreamInfo


@dataclasses.dataclass(frozen=True)
class Disconnected:
    connection: int
    reason: str  # one line
    last_pts_s: float | None  # the connection's last frame (seconds since its first), None without frames
    last_mono: float | None  # when that frame arrived (time.monotonic)


@dataclasses.dataclass(frozen=True)
class Ended:
    reason: str  # a replayed file reached its end (or could not be read again)


EVENTS = (Connected, Disconnected, Ended)


class Arrival:
    """A decoded frame and when it arrived; converted to RGB only when the model takes it."""

    __slots__ = ("seq", "connection", "pts_s", "mono", "unix", "bytes_total", "_frame", "_rgb")

    def __init__(self, seq: int, connection: int, pts_s: float, mono: float, unix: float, bytes_total: int,
                 frame: Any):
        self.seq = seq  # 0-based over every frame this source decoded
        self.connection = connection
        self.pts_s = pts_s  # presentation time, seconds since the connection's first frame
        self.mono, self.unix = mono, unix  # arrival: time.monotonic() and time.time() right after decoding
        self.bytes_total = bytes_total  # packet bytes this source received up to this frame
        self._frame, self._rgb = frame, None

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8, display rotation applied."""
        if self._rgb is None:
            self._rgb = self._frame if isinstance(self._frame, np.ndarray) else media.frame_rgb(self._frame)
            self._frame = None
        return self._rgb


# ------------------------------------------------------------------------------------------------ opening
def open_source(spec: SourceSpec, options: LiveOptions):
    """The PyAV container of `spec`, with a video stream. Raises SourceError with a one-line reason."""
    import av

    kwargs: dict[str, Any] = {"metadata_errors": "ignore"}
    if spec.kind == "stream":
        opts = dict(STREAM_OPTIONS)
        if spec.uri.lower().startswith(("rtsp://", "rtsps://")):
            opts["rtsp_transport"] = "tcp"
        kwargs.update(options=opts, timeout=(options.open_timeout_s, options.read_timeout_s))
    elif spec.kind == "device":
        kwargs.update(format="v4l2", timeout=(options.open_timeout_s, options.read_timeout_s))
    try:
        container = av.open(spec.uri, **kwargs)
    except av.ExitError:  # PyAV's open timeout interrupts FFmpeg ("Immediate exit requested")
        raise SourceError(f"cannot open {spec.public_uri}: no video within {options.open_timeout_s:g} s "
                          "(--open-timeout; is the camera up, sending, and the address right?)") from None
    except (av.FFmpegError, OSError) as err:
        raise SourceError(f"cannot open {spec.public_uri}: {media.short_error(err)} (is the camera up and the "
                          "address right?)") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        raise SourceError(f"{spec.public_uri} carries no video stream (streams: {', '.join(kinds) or 'none'})")
    return container


def stream_info(container) -> StreamInfo:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    return StreamInfo(stream.codec_context.name, stream.width, stream.height, float(rate) if rate else None)


def check_source(spec: SourceSpec, options: LiveOptions) -> StreamInfo:
    """Open `spec` once and close it: SourceError unless it is a stream with video (before the model loads)."""
    container = open_source(spec, options)
    try:
        return stream_info(container)
    finally:
        container.close()


# ------------------------------------------------------------------------------------------------ the decoder
class StreamSource:
    """The decoder thread of one source: `start()`, then take frames and events from `queue`; `stop()`."""

    def __init__(self, spec: SourceSpec, options: LiveOptions):
        self.spec, self.options = spec, options
        self.queue = NewestQueue(options.queue_size, EVENTS)
        self.decoded = 0  # frames decoded
        self.bytes_total = 0
        self.decode_errors = 0
        self.reconnects = 0  # times the stream dropped and was opened again
        self.state = "starting"  # starting | running | reconnecting | ended
        self.message: str | None = None  # why it is reconnecting or ended
        self.decode_times: collections.deque[float] = collections.deque(maxlen=4096)  # monotonic, per frame
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"live-decode:{self.spec.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading (a blocked read returns within `read_timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.options.read_timeout_s + 1 if timeout is None else timeout)

    # ---------------------------------------------------------------------------------------------- thread
    def _run(self) -> None:
        connection, wait = 0, self.options.reconnect_initial_s
        while not self._stop.is_set():
            try:
                container = open_source(self.spec, self.options)
            except SourceError as err:
                if self.spec.kind == "file":
                    return self._end(str(err))
                self.state, self.message = "reconnecting", str(err)
                if self._stop.wait(wait):
                    return
                wait = min(wait * 2, self.options.reconnect_max_s)
                continue
            connection += 1
            wait = self.options.reconnect_initial_s
            try:
                self.queue.put_event(Connected(connection, stream_info(container)))
                self.state, self.message = "running", None
                reason, last_pts, last_mono = self._read(container, connection)
            finally:
                container.close()
            if self._stop.is_set():
                return
            if self.spec.kind == "file":
                return self._end(reason)
            self.reconnects += 1
            self.state, self.message = "reconnecting", reason
            self.queue.put_event(Disconnected(connection, reason, last_pts, last_mono))

    def _end(self, reason: str) -> None:
        self.state, self.message = "ended", reason
        self.queue.put_event(Ended(reason))

    def _read(self, container, connection: int) -> tuple[str, float | None, float | None]:
        """Decode until the stream ends, stalls or fails; returns (why, last frame's pts_s, its arrival)."""
        import av

        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first: float | None = None
        start = time.monotonic()
        last_pts, last_mono = None, None
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return "stopped", last_pts, last_mono
                self.bytes_total += packet.size or 0
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    self.decode_errors += 1
                    continue
                for frame in frames:
                    now = time.monotonic()
                    if frame.time is not None and first is None:
                        first = float(frame.time)
                    pts = _pts_s(frame.time, first, last_pts, last_mono, now, start)
                    if self.spec.kind == "file":  # replay at the file's own rate
                        if self._stop.wait(max(0.0, start + pts - now)):
                            return "stopped", last_pts, last_mono
                        now = time.monotonic()
                    self.queue.put(Arrival(self.decoded, connection, pts, now, time.time(), self.bytes_total, frame))
                    self.decoded += 1
                    self.decode_times.append(now)
                    last_pts, last_mono = pts, now
        except (av.FFmpegError, OSError) as err:
            return f"stream failed: {media.short_error(err)}", last_pts, last_mono
        return ("end of file" if self.spec.kind == "file" else "end of stream"), last_pts, last_mono


def _pts_s(time_s: float | None, first: float | None, last: float | None, last_mono: float | None, now: float,
           start: float) -> float:
    """Seconds since the connection's first frame, from the stream's presentation time; where the stream has none,
    or jumps backwards or far ahead of the clock (a discontinuity), the arrival clock instead."""
    if time_s is None or first is None:
        return now - start
    pts = float(time_s) - first
    if last is not None and last_mono is not None and not (last <= pts <= last + 2 * (now - last_mono) + 5):
        return last + (now - last_mono)
    return pts
