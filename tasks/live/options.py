"""Options of a live camera, defined once: what `human3r live`, the `live-cameras` flow, prefect.yaml and the Ray
actors take (frozen pydantic models in the style of `tasks.options`; the CLI builds its flags with
`tasks.options.click_options`).

What the rows are made of is `tasks.options.ReconstructOptions` (resets, TTT3R, points) and the network is
`tasks.options.ModelOptions`, as for files; :class:`LiveOptions` says how a stream becomes a session of segments
(segment length, when a dropped stream starts a new session, reconnection, the frame queue), and :class:`FeedOptions`
where the low-latency feed listens. :class:`Camera` names one camera of a deployment.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeedOptions(_Options):
    """The WebSocket feed: one JSON message per processed frame (see `tasks.live.message`)."""

    enabled: bool = Field(True, description="Serve the WebSocket feed of people in the world.")
    host: str = Field("127.0.0.1", description="Address the feed listens on (loopback unless told otherwise).")
    port: int = Field(8765, ge=0, le=65535, description="Port of the feed (0 = any free port, printed at start).")
    client_queue: int = Field(256, ge=1, description="Messages buffered per client; a client that reads slower "
                                                     "loses the oldest (counted per client).")


class LiveOptions(_Options):
    """How a stream becomes sessions of segments in the dataset."""

    segment_seconds: float = Field(60.0, gt=0, description="Seconds of stream per segment; each segment is a video "
                                                           "of the dataset, committed atomically when it closes.")
    session_gap_s: float = Field(30.0, ge=0, description="A stream that comes back within this many seconds "
                                                         "continues its session (state, world frame, track ids); "
                                                         "after a longer break a new session starts.")
    reconnect_initial_s: float = Field(0.5, gt=0, description="First wait before reopening a dropped stream; it "
                                                              "doubles on every failed attempt.")
    reconnect_max_s: float = Field(10.0, gt=0, description="Longest wait between two attempts to reopen it.")
    open_timeout_s: float = Field(10.0, gt=0, description="Seconds to open the stream before the attempt fails.")
    read_timeout_s: float = Field(5.0, gt=0, description="Seconds without data before the stream counts as "
                                                         "dropped.")
    queue_size: int = Field(2, ge=1, description="Decoded frames waiting for the model; the model takes the newest "
                                                 "and the older ones are dropped (counted): the decoder never "
                                                 "waits.")
    realtime: bool = Field(False, description="Replay a video file at its own frame rate as if it were a camera "
                                              "(tests, demos); without it a file is refused.")
    status_seconds: float = Field(10.0, gt=0, description="Seconds between two rows of the live_status table.")
    feed: FeedOptions = FeedOptions()
    rerun: str | None = Field(None, description="Also stream to a Rerun viewer: its URL "
                                                "(rerun+http://127.0.0.1:9876/proxy, from `rerun`), or a .rrd file.")

    @model_validator(mode="after")
    def _backoff(self) -> LiveOptions:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_initial_s "
                             f"({self.reconnect_initial_s})")
        return self


class Camera(_Options):
    """One camera of a deployment: its name (the key of its health row) and its stream."""

    name: str = Field(description="The camera's name: letters, digits, '.', '_', '-' (runs.camera, live_status).")
    source: str = Field(description="What FFmpeg opens as a stream: rtsp://, rtmp://, srt://, udp://, tcp://, "
                                    "http(s):// (HLS), a V4L2 device (/dev/video0), or a file with realtime.")
    feed_port: int | None = Field(None, ge=0, le=65535, description="Port of its feed (empty = any free port, shown "
                                                                   "in live_status.feed_url).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CAMERA_NAME.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value
