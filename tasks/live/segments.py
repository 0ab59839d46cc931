"""One segment of a live session -> one video of the dataset, committed atomically (`storage.writer.VideoWriter`).

A segment is keyed like a video: its ``video_id`` is the first 64 bits of the sha256 of
``live:<session_id>:<segment_index>`` (a segment has no file to hash; the same segment always gets the same id), its
runs row carries the run identity (`tasks.identity.RunIdentity`: weights, precision, body model, row-changing
options) and the session columns (camera, session_id, segment_index, segment_start_s, gap_before_s,
n_frames_dropped). Its rows stream into the writer in chunks as frames are processed; nothing is visible until
:meth:`Segment.commit`, so a process killed mid-segment leaves only unreferenced files (`human3r vacuum` removes
them) and every committed segment whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time

from storage import schema as S
from storage.fs import Root
from storage.writer import VideoWriter
from tasks.identity import RunIdentity
from tasks.live.source import StreamInfo
from tasks.reconstruction.convert import RowBuffer


def segment_content_sha256(session_id: str, index: int) -> str:
    """The content hash a segment records (it has no file): sha256 of ``live:<session_id>:<index>``."""
    return hashlib.sha256(f"live:{session_id}:{index}".encode()).hexdigest()


def segment_video_id(session_id: str, index: int) -> str:
    return S.video_id_for(segment_content_sha256(session_id, index))


@dataclasses.dataclass(frozen=True)
class Committed:
    """A committed segment."""

    video_id: str
    session_id: str
    index: int
    frames: int  # processed frames (rows of frames)
    dropped: int  # frames decoded in its span that the model skipped
    human_rows: int
    tracks: int
    start_s: float  # session time of its first frame
    duration_s: float
    seconds: float  # wall-clock seconds of the commit
    at: dt.datetime  # when it was committed (UTC)


class Segment:
    """The open segment: rows are appended per processed frame, `commit` makes them live."""

    def __init__(self, root: Root, identity: RunIdentity, *, session_id: str, index: int, camera: str,
                 source_uri: str, gap_before_s: float | None, first_seq: int, first_bytes: int):
        self.session_id, self.index, self.camera = session_id, index, camera
        self.source_uri, self.gap_before_s = source_uri, gap_before_s
        self.video_id = segment_video_id(session_id, index)
        self.run_id = S.new_run_id()
        run = identity.run_info(source_uri, self.run_id, dt.datetime.now(dt.UTC))
        self.writer = VideoWriter(root, self.video_id, run)
        self.buffer = RowBuffer(self.writer.append, identity.options.chunk_frames)
        # its span starts after the previous segment's last frame: frames dropped (and bytes received) in between
        # are its own
        self.first_seq, self.first_bytes = first_seq, first_bytes
        self.frames = 0
        self.first_t: float | None = None
        self.last_t = 0.0
        self.last_seq, self.last_bytes = first_seq - 1, first_bytes
        self.size: tuple[int, int] | None = None  # (width, height) of its frames

    def add(self, rows: dict, *, timestamp_s: float, seq: int, bytes_total: int, width: int, height: int) -> None:
        """One processed frame's rows (`tasks.reconstruction.convert.frame_rows`)."""
        self.buffer.add(rows)
        self.frames += 1
        if self.first_t is None:
            self.first_t = timestamp_s
        self.last_t, self.last_seq, self.last_bytes = timestamp_s, seq, bytes_total
        self.size = self.size or (width, height)

    def span_s(self, timestamp_s: float) -> float:
        """Stream seconds from its first frame to a frame at `timestamp_s`."""
        return 0.0 if self.first_t is None else timestamp_s - self.first_t

    def commit(self, info: StreamInfo | None) -> Committed | None:
        """Make its rows live (one atomic commit); None (and nothing written) when it holds no frame."""
        if self.frames == 0:
            self.writer.abort()
            return None
        started = time.perf_counter()
        self.buffer.flush()
        fps = info.fps if info is not None and info.fps else None
        decoded = self.last_seq - self.first_seq + 1
        duration = self.last_t - self.first_t + (1 / fps if fps else 0.0)
        width, height = self.size
        videos = {
            S.VIDEO_ID: [self.video_id], S.CONTENT_SHA256: [segment_content_sha256(self.session_id, self.index)],
            S.SOURCE_URI: [self.source_uri], S.SIZE_BYTES: [max(0, self.last_bytes - self.first_bytes)],
            S.DURATION_S: [duration], S.FPS: [fps], S.WIDTH_PX: [width], S.HEIGHT_PX: [height], S.ROTATION_DEG: [0],
            S.FRAME_COUNT: [decoded], S.CODEC: [info.codec if info is not None else None],
        }
        extra = {S.CAMERA: self.camera, S.SESSION_ID: self.session_id, S.SEGMENT_INDEX: self.index,
                 S.SEGMENT_START_S: self.first_t, S.GAP_BEFORE_S: self.gap_before_s,
                 S.N_FRAMES_DROPPED: decoded - self.frames}
        with self.writer:
            finished = self.writer.commit(videos=videos, runs_extra=extra)
        return Committed(self.video_id, self.session_id, self.index, self.frames, decoded - self.frames,
                         finished.rows[S.HUMANS.name], self.writer.n_tracks, self.first_t, duration,
                         time.perf_counter() - started, dt.datetime.now(dt.UTC))

    def abort(self) -> None:
        """Drop what was written (nothing was visible)."""
        self.writer.abort()
