"""A camera's stream through Human3R until stopped: sessions of segments into the dataset, a message per frame.

A **session** is one `human3r.stream.run_stream` over the frames the model takes: the recurrent state, the tracker
(track ids) and the world frame (`tasks.reconstruction.convert.world_anchor` of its first frame) carry over from
its first frame to its last. Its frames' ``frame_idx`` counts every frame decoded since the session began (the
skipped ones too) and ``timestamp_s`` is stream time since its first frame. A session is cut into **segments**
of `LiveOptions.segment_seconds` of stream time (`tasks.live.segments`: each a video, committed atomically when
the next frame falls past its end).

When the stream drops, the open segment is committed at once. If the stream comes back within
`LiveOptions.session_gap_s`, the session goes on (its clock jumps by the break, recorded as the next segment's
``gap_before_s``); otherwise it ends and the next frame starts a new session, whose first segment records the
break. When asked to stop (SIGTERM, Ctrl-C, the deployment), the open segment is committed and the run returns; a
kill loses only the open segment, of which nothing is visible.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

import torch

from storage import schema as S
from storage.errors import StorageError
from storage.fs import Root
from tasks.identity import RunIdentity
from tasks.live.message import encode, frame_message
from tasks.live.options import LiveOptions
from tasks.live.segments import Segment
from tasks.live.source import Arrival, Connected, Disconnected, Ended, StreamInfo, StreamSource
from tasks.live.stats import LiveStats, StatusWriter
from tasks.reconstruction.convert import frame_rows, world_anchor
from tasks.reconstruction.video import stored_outputs, tagged_frames

TAKE_TIMEOUT_S = 0.2  # how often the model thread looks at the stop flag and the status clock while idle


@dataclasses.dataclass
class LiveFrame:
    """A frame the model takes, placed in its session (what `tagged_frames` reads)."""

    index: int  # frames decoded in the session before it
    timestamp_s: float  # stream time since the session's first frame
    arrival: Arrival

    @property
    def rgb(self):
        return self.arrival.rgb


@dataclasses.dataclass
class _Session:
    id: str
    pending_gap: float | None  # the break to record on the next segment opened
    first_seq: int  # its first frame's Arrival.seq
    span_seq: int  # the next segment's span starts here (decoded frames) ...
    span_bytes: int  # ... and here (packet bytes)
    offset: float = 0.0  # session time of the current connection's first frame (t = offset + pts_s)
    last_t: float = 0.0  # session time of the last frame taken
    anchor: torch.Tensor | None = None
    segment: Segment | None = None
    next_index: int = 0
    drop: Disconnected | None = None  # the stream is away since this drop


class LiveRun:
    """Runs one camera (`run()` blocks until `stop` is set or a replayed file ends)."""

    def __init__(self, source: StreamSource, root: Root, model, identity: RunIdentity, *, camera: str,
                 options: LiveOptions, stats: LiveStats, stop: threading.Event, body_model=None,
                 publish: Callable[[str], None] | None = None, viewer=None, status: StatusWriter | None = None,
                 log: Callable[[str], None] = print):
        self.source, self.root, self.model, self.identity = source, root, model, identity
        self.camera, self.options, self.stats, self.stop = camera, options, stats, stop
        self.body_model, self.publish, self.viewer, self.status, self.log = body_model, publish, viewer, status, log
        self.info: StreamInfo | None = None
        self.committed: list = []  # tasks.live.segments.Committed, in order
        self.sessions: list[str] = []
        self._carry: Arrival | None = None  # a frame that starts the next session (it came after a long break)
        self._drop: Disconnected | None = None  # the break before the next session, when one ended on it
        self._ended = False
        self._status_due = 0.0

    # ------------------------------------------------------------------------------------------------ the loop
    def run(self) -> None:
        self.source.start()
        try:
            while not self.stop.is_set() and not self._ended:
                item, self._carry = self._carry or self._take(), None
                if isinstance(item, Arrival):
                    self._session(item)
                elif isinstance(item, Connected):
                    self.info = item.info
                    self.stats.set(state="running", message=None)
                elif isinstance(item, Disconnected):
                    self._drop = self._drop if item.last_mono is None else item
                    self.stats.set(state="reconnecting", message=item.reason)
                elif isinstance(item, Ended):
                    self.log(f"{self.camera}: {item.reason}")
                    self._ended = True
        finally:
            self.source.stop()
            self.stats.set(state="stopped", message=None, session_id=None, segment_index=None)

    def _take(self):
        """The next frame or event (None after a short wait), writing a status row when one is due."""
        item = self.source.queue.take(TAKE_TIMEOUT_S)
        now = time.monotonic()
        if self.status is not None and now >= self._status_due:
            self._status_due = now + self.options.status_seconds
            self.status.submit(self.stats.snapshot(self.source))
        return item

    # ------------------------------------------------------------------------------------------------ a session
    def _session(self, first: Arrival) -> None:
        from human3r.stream import run_stream

        gap = None if self._drop is None else _gap(self._drop, first)
        self._drop = None
        session = _Session(S.new_run_id(), gap, first.seq, first.seq, first.bytes_total)
        self.sessions.append(session.id)
        self.stats.set(session_id=session.id, sessions=len(self.sessions), state="running", message=None)
        self.log(f"{self.camera}: session {session.id} started" + (f" after a {gap:.1f} s break" if gap else ""))
        options = self.identity.options
        frames = tagged_frames(self._inputs(session, first), self.model.cfg)
        stream = run_stream(self.model, frames, use_ttt3r=options.use_ttt3r, reset_interval=options.reset_interval,
                            outputs=stored_outputs(options), prefetch=0)
        try:
            for view in stream:
                self._frame(session, view)
        finally:
            stream.close()
            self._close_segment(session)
        self.stats.set(session_id=None)

    def _inputs(self, session: _Session, item) -> Iterator[LiveFrame]:
        """The session's frames, as the model takes them. Handles the events in between (a drop commits the open
        segment); returns on stop, at the end of a replayed file, or when the stream stays away too long."""
        while True:
            if isinstance(item, Arrival):
                if session.drop is not None:  # the first frame after the stream came back
                    gap = _gap(session.drop, item)
                    if gap > self.options.session_gap_s:
                        self._carry, self._drop = item, session.drop
                        return
                    session.offset = session.offset + (session.drop.last_pts_s or 0.0) + gap
                    session.pending_gap, session.drop = gap, None
                    self.stats.set(state="running", message=None)
                    self.log(f"{self.camera}: stream back after {gap:.1f} s; session {session.id} goes on")
                elif item.seq == session.first_seq:
                    session.offset = -item.pts_s  # the session's clock starts at its first frame
                session.last_t = session.offset + item.pts_s
                yield LiveFrame(item.seq - session.first_seq, session.last_t, item)
            elif isinstance(item, Disconnected):
                self._close_segment(session)
                if session.drop is None or item.last_mono is not None:
                    session.drop = item if item.last_mono is not None else dataclasses.replace(
                        item, last_pts_s=session.last_t - session.offset, last_mono=time.monotonic())
                self.stats.set(state="reconnecting", message=item.reason)
                self.log(f"{self.camera}: stream dropped ({item.reason}); reconnecting")
            elif isinstance(item, Connected):
                self.info = item.info
            elif isinstance(item, Ended):
                self.log(f"{self.camera}: {item.reason}")
                self._ended = True
                return
            item = None
            while item is None:
                if self.stop.is_set():
                    return
                item = self._take()
                away = session.drop is not None and time.monotonic() - session.drop.last_mono
                if item is None and away and away > self.options.session_gap_s:
                    self._drop = session.drop  # the next session records the whole break
                    self.log(f"{self.camera}: no stream for {away:.1f} s; session {session.id} ends")
                    return

    def _frame(self, session: _Session, view) -> None:
        """One processed frame: its rows, its message (published), its place in a segment."""
        tag = view.tag
        live: LiveFrame = tag.source
        if session.anchor is None:
            session.anchor = world_anchor(view)
        rows = frame_rows(view, frame_idx=tag.index, timestamp_s=tag.timestamp_s, image=tag.image,
                          geometry=tag.geometry, body_model=self.body_model, options=self.identity.options.convert,
                          anchor=session.anchor)
        segment = session.segment
        if segment is not None and segment.span_s(tag.timestamp_s) >= self.options.segment_seconds:
            self._close_segment(session)
            segment = None
        segment = segment or self._open_segment(session)
        height, width = live.rgb.shape[:2]
        message = frame_message(rows, camera=self.camera, session_id=session.id, segment_index=segment.index,
                                video_id=segment.video_id, arrival_unix_s=live.arrival.unix, width_px=width,
                                height_px=height)
        latency_ms = (time.monotonic() - live.arrival.mono) * 1000
        text = encode(message, latency_ms=latency_ms, dropped_total=self.source.queue.dropped)
        if self.publish is not None:
            self.publish(text)
        self.stats.frame_done(latency_ms, len(message["people"]))
        if self.viewer is not None:
            self.viewer.log(message)
        segment.add(rows, timestamp_s=tag.timestamp_s, seq=live.arrival.seq, bytes_total=live.arrival.bytes_total,
                    width=width, height=height)

    # ------------------------------------------------------------------------------------------------ segments
    def _open_segment(self, session: _Session) -> Segment:
        segment = Segment(self.root, self.identity, session_id=session.id, index=session.next_index,
                          camera=self.camera, source_uri=self.source.spec.public_uri,
                          gap_before_s=session.pending_gap, first_seq=session.span_seq,
                          first_bytes=session.span_bytes)
        session.segment, session.pending_gap = segment, None
        session.next_index += 1
        self.stats.set(segment_index=segment.index)
        return segment

    def _close_segment(self, session: _Session) -> None:
        """Commit the open segment (if it holds frames); a commit that fails for good becomes a failures row."""
        segment, session.segment = session.segment, None
        if segment is None:
            return
        session.span_seq, session.span_bytes = segment.last_seq + 1, segment.last_bytes
        self.stats.set(segment_index=None)
        try:
            committed = segment.commit(self.info)
        except (StorageError, OSError) as err:
            from storage.writer import write_failure

            self.log(f"{self.camera}: segment {segment.index} of session {session.id} could not be committed: {err}")
            try:
                write_failure(self.root, source_uri=segment.source_uri, stage="commit", error=err,
                              run_id=segment.run_id, video_id=segment.video_id)
            except (StorageError, OSError):
                pass
            return
        if committed is None:
            return
        self.committed.append(committed)
        self.stats.committed(committed.video_id, committed.at)
        if self.status is not None:
            self._status_due = 0.0  # a row at the next look: the dashboard sees the commit
        self.log(f"{self.camera}: segment {committed.index} of session {committed.session_id} committed: "
                 f"{committed.frames} frames ({committed.dropped} skipped), {committed.tracks} people, "
                 f"{committed.duration_s:.1f} s of stream, video {committed.video_id} ({committed.seconds:.2f} s)")


def _gap(drop: Disconnected, arrival: Arrival) -> float:
    """Seconds without frames: from the last frame before the drop to the first of the connection `arrival` is on
    (its arrival, less its place in that connection)."""
    return max(0.0, (arrival.mono - arrival.pts_s) - (drop.last_mono or arrival.mono))
