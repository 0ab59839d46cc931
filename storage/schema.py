"""The dataset contract: schema version, tables, column names (with units and frames), layout, and the rules that say
which rows are live.

This module is the single source of truth for what a Human3R dataset holds. The writer (`storage.writer`), the
dataset helpers (`storage.dataset`), the DuckDB catalog (`storage.catalog`), the dashboard and the tests import the
names from here; none of them spells a column name as a literal.

Coordinate frames and units
---------------------------
* **World frame** (``*_world*``): the camera frame of the first processed frame of the video (x right, y down,
  z forward, OpenCV convention), in **metres as the model predicts them**. Human3R's scale is metric up to the
  network's accuracy; nothing is rescaled afterwards. When a run uses ``reset_interval``, the segments are chained
  into this one frame exactly as the reference does. The segments of a live session (``human3r live``: each a video
  of its own) all share the session's world frame: the camera of the session's first frame.
* **Camera frame** (``*_cam*``): the camera of the row's own frame, same axis convention.
* **Rotations** are axis-angle vectors (radians) in the frame named by the column.
* **Pixels** (``*_px``): ``src`` columns are in the source video's pixels after display rotation; ``work`` columns
  are at the network's working resolution (the resized and centre-cropped image the model saw).
* **Matrices** are flattened row-major: ``cam_to_world[4*i + j]`` is row i, column j (DuckDB lists are 1-based, so
  the camera centre is ``[cam_to_world[4], cam_to_world[8], cam_to_world[12]]``).

Layout (``ROOT`` is a local folder or an ``s3://bucket/prefix``)
--------------------------------------------------------------
::

    ROOT/_dataset.json          # {"schema_version": 2, "format": "delta", ...}: what this folder is
    ROOT/<table>/_delta_log/    # one Delta Lake table per stored table: runs, frames, humans, points, failures,
    ROOT/<table>/*.parquet      #   sources (Parquet data files + transaction log; any Delta reader opens them)

Tables are not partitioned: each run writes one sorted file per table, so a file holds one video until compaction
(``human3r compact``) merges small files, keeping rows sorted by ``video_id`` so a per-video query reads one or a
few row groups. Statistics are kept only for the key columns (:data:`STATS_COLUMNS`) and checkpoints are written
every 100 commits, so opening a table costs the same at 200 or 20,000 videos.

Which rows are live (what every reader, ours or a plain Delta reader, applies)
-------------------------------------------------------------------------------
A video's run commits table by table: first its rows to ``frames``, ``humans`` and ``points`` (each tagged with the
run's ``run_id``), then its row to ``runs``, which is the moment the video becomes visible. So:

1. **runs**: the live run of a video is its row with the latest ``finished_at`` (ties: the larger ``run_id``).
2. **frames, humans, points**: a row is live when its ``run_id`` is a live run.
3. **videos** is not stored: it is the video columns of the live runs.
4. **failures**: the latest row per ``source_uri``, unless a run of the same ``source_uri`` finished after it, or it
   is a probe failure (``stage`` = ``probe``) and a later probe of the same ``source_uri`` succeeded (a ``sources``
   row without ``probe_error`` probed after it). A transient failure (``error_type`` = ``TransientReadError``: the
   file could not be fetched this time) is such a row: it shows until the retry succeeds.
5. **sources**: the latest row per ``source_uri`` (a cache of what discovery has seen).
6. **derived tables** (computed from a run's rows, kind ``derived``): the latest row per ``key`` (by
   ``latest_by``) among the rows whose ``run_id`` is a live run.
7. **evaluations** (kind ``results``): every row of the latest evaluation run (``evaluated_at``, then ``run_id``)
   of each key ``(model_version, precision, params_hash, protocol, benchmark, sequence)``: a sequence evaluated
   again replaces its rows, a failed evaluation shows until a later one of the same key succeeds.
8. **live_status**: the latest row per ``camera`` (an event log of each live camera's health).
9. **sessions** is not stored: it groups the live runs that carry a ``session_id`` (live segments) by session.

``storage.catalog`` defines these rules as the views ``runs``, ``videos``, ``frames``, ``humans``, ``points``,
``failures``, ``sources``, the derived tables, ``evaluations``, ``live_status`` and ``sessions``; the stored tables
are also reachable as ``<table>_all``.

What a plain Delta reader sees (Spark, Trino, Polars, DuckDB's ``delta_scan``, ``deltalake``), rules not applied
---------------------------------------------------------------------------------------------------------------
* **frames, humans, points** and the **derived tables** hold the rows of the live runs, plus, for a short time:
  the rows of runs in flight (their rows committed, their ``runs`` row not yet: seconds, at the end of a video),
  and the rows of a run another run of the same video replaced, until the writer that replaced it deletes them
  after it commits: at least :data:`REPLACED_GRACE_S` after the replacement, at the latest at the end of the
  command or flow run that replaced it (``human3r reconstruct`` also every 100 videos), or, if that one crashed,
  by the next one or by ``human3r vacuum`` / ``compact``. Rows of a run that crashed before its ``runs`` row stay
  until ``human3r vacuum`` (older than its ``--min-age``). So once the writers are done, ``count(*)`` over the
  Delta table is the live count: a re-run or a model upgrade does not double the archive.
* **runs** keeps every committed run (the history of re-runs): take the latest per ``video_id`` (rule 1).
* **evaluations** keeps every evaluation run: take the latest run per key (rule 7). A re-run evaluates only what
  is missing or failed, so without ``--force`` a key has one ok run (and the failed ones before it, if any).
* **failures** and **sources** keep every row too (when and why a file failed, each probe): take the latest per
  ``source_uri`` (rules 4, 5); **live_status** keeps every health row: take the latest per ``camera`` (rule 8).
  They are event logs of small rows, not data: deleting their history would lose what the dashboard and
  re-probing read, and doubles there count events, not frames.

A reader that applies the rules (ours does) reads ``runs`` first, then the data tables, within
:data:`REPLACED_GRACE_S` (rows are committed before the run that makes them visible, and replaced rows stay that
long), so that order never shows a half-written or missing video; `storage.deletes` holds the deletes.
"""

from __future__ import annotations

import dataclasses
import secrets
import time

import pyarrow as pa

SCHEMA_VERSION = 2
"""Bump on any breaking change (rename, type change, removed column). Adding a nullable column does not break.
Version 1 was the home-made layout (per-video files and commit pointers); `human3r migrate` converts it."""

PRODUCER = "human3r-archive"

# --------------------------------------------------------------------------------------------------- path layout
DATASET_FILE = "_dataset.json"
FORMAT = "delta"  # the table format, recorded in the dataset marker
TABLE_DIR = "{table}"  # a Delta table per stored table, under the root
DATA_FILE = "part-{run_id}-{table}.parquet"  # the file one run writes into a table (one per run and table)
SCHEMA_VERSION_PROPERTY = "human3r.schema_version"  # Delta table property: the schema version of the table
REWRITTEN_FILE = "part-rewrite-{token}.parquet"  # a file written again without the rows of deleted runs

REPLACED_GRACE_S = 5.0
"""Seconds a replaced run's rows stay in the files after the run that replaced it finished: a reader that read
``runs`` before that commit has this long to open the data tables (ours takes milliseconds locally)."""

# --------------------------------------------------------------------------------------------------- column names
# shared
VIDEO_ID = "video_id"  # 16 hex chars: the first 64 bits of the sha256 of the video file's bytes (video_id_for)
RUN_ID = "run_id"  # 32 hex chars: microseconds since the epoch (14 hex) + 18 random hex (new_run_id)
FRAME_IDX = "frame_idx"  # index of the frame in the decoded source stream (0-based, before stride)
TIMESTAMP_S = "timestamp_s"  # presentation time of the frame, seconds from the stream start

# videos
CONTENT_SHA256 = "content_sha256"
SOURCE_URI = "source_uri"
SIZE_BYTES = "size_bytes"
DURATION_S = "duration_s"
FPS = "fps"
WIDTH_PX = "width_px"
HEIGHT_PX = "height_px"
ROTATION_DEG = "rotation_deg"
FRAME_COUNT = "frame_count"
CODEC = "codec"

# runs
MODEL_VERSION = "model_version"
CHECKPOINT_SHA256 = "checkpoint_sha256"
PRESET = "preset"
PARAMS_JSON = "params_json"
PARAMS_HASH = "params_hash"
SCHEMA_VERSION_COL = "schema_version"
STATUS = "status"
STARTED_AT = "started_at"
FINISHED_AT = "finished_at"
SECONDS = "seconds"
N_FRAMES = "n_frames"
N_HUMAN_ROWS = "n_human_rows"
N_TRACKS = "n_tracks"
N_POINTS = "n_points"
N_DECODE_ERRORS = "n_decode_errors"
HOST = "host"
# runs of live segments (`human3r live`: a session of a camera lands as consecutive segments, each a video)
CAMERA = "camera"
SESSION_ID = "session_id"
SEGMENT_INDEX = "segment_index"
SEGMENT_START_S = "segment_start_s"
GAP_BEFORE_S = "gap_before_s"
N_FRAMES_DROPPED = "n_frames_dropped"

# sources (what discovery has seen)
MTIME_NS = "mtime_ns"
PROBED_AT = "probed_at"
PROBE_ERROR = "probe_error"
PROBE_TRANSIENT = "probe_transient"
PROBE_ATTEMPTS = "probe_attempts"
RETRY_AFTER = "retry_after"

# failures
STAGE = "stage"
ERROR_TYPE = "error_type"
MESSAGE = "message"
FAILED_AT = "failed_at"

# frames
CAM_TO_WORLD = "cam_to_world"
FX_SRC_PX, FY_SRC_PX, CX_SRC_PX, CY_SRC_PX = "fx_src_px", "fy_src_px", "cx_src_px", "cy_src_px"
FX_WORK_PX, FY_WORK_PX, CX_WORK_PX, CY_WORK_PX = "fx_work_px", "fy_work_px", "cx_work_px", "cy_work_px"
WORK_WIDTH_PX, WORK_HEIGHT_PX = "work_width_px", "work_height_px"
N_HUMANS = "n_humans"
CONF_MEAN = "conf_mean"
CONF_MEDIAN = "conf_median"

# humans
TRACK_ID = "track_id"
DETECTION_SCORE = "detection_score"
GLOBAL_ORIENT_CAM = "global_orient_cam"
BODY_POSE = "body_pose"
LEFT_HAND_POSE = "left_hand_pose"
RIGHT_HAND_POSE = "right_hand_pose"
JAW_POSE = "jaw_pose"
BETAS = "betas"
EXPRESSION = "expression"
HEAD_CAM_M = "head_cam_m"
HEAD_WORLD_M = "head_world_m"
GLOBAL_ORIENT_WORLD = "global_orient_world"
TRANSL_WORLD_M = "transl_world_m"
JOINTS_WORLD_M = "joints_world_m"

# points
X_M, Y_M, Z_M = "x_m", "y_m", "z_m"
RED, GREEN, BLUE = "r", "g", "b"
CONF = "conf"

VIDEO_ID_HEX = 16  # a video's id is the first 16 hex chars (64 bits) of its content sha256


def video_id_for(content_sha256: str) -> str:
    """The dataset key of a video: the first 64 bits of the sha256 of its bytes, so a copy is the same video."""
    return content_sha256[:VIDEO_ID_HEX]


def new_run_id(now_ns: int | None = None) -> str:
    """A run id that sorts by start time: 14 hex of microseconds since the epoch, then 18 random hex (32 chars)."""
    us = (time.time_ns() if now_ns is None else now_ns) // 1000
    return f"{us:014x}{secrets.token_hex(9)}"


# --------------------------------------------------------------------------------------------------- types
_F32, _F64, _I16, _I32, _I64 = pa.float32(), pa.float64(), pa.int16(), pa.int32(), pa.int64()
_TS = pa.timestamp("us", tz="UTC")


def _vec(n: int) -> pa.DataType:
    """A vector of `n` float32 (the length is in the column's doc). Stored as a variable-length list: Delta Lake has
    no fixed-size list type."""
    return pa.list_(_F32)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: name, Arrow type, nullability, and the documentation a user reads (unit, frame)."""

    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False

    def field(self) -> pa.Field:
        """The Arrow field. The doc stays here (and in `human3r schema`): Delta tables keep field metadata in their
        schema and refuse appends whose metadata differs, so a reworded doc would lock existing datasets."""
        return pa.field(self.name, self.type, nullable=self.nullable)


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of the dataset: a Delta table under the root, or (``kind="view"``) a view the catalog derives.

    kind: ``data`` (rows of one run, live when their run is: frames, humans, points), ``runs`` (one row per
    committed run), ``events`` (failures) and ``cache`` (sources), both the latest row per ``key``, ``derived``
    (computed from a run's rows, e.g. quality scores or fused scenes: the latest row per ``key`` among those of live
    runs), ``results`` (many rows per unit of work, e.g. an evaluated sequence's metrics: every row of the latest
    ``run_id`` per ``key``, by ``latest_by`` then ``run_id``) or ``view``.
    """

    name: str
    doc: str
    columns: tuple[Column, ...]
    kind: str = "data"
    sort_by: tuple[str, ...] = ()  # order of the rows within a file
    key: tuple[str, ...] = ()  # events, cache, derived, results: the columns whose latest row (run) counts
    latest_by: str | None = None  # events, cache, derived, results: the column that orders rows of one key
    stats: tuple[str, ...] = (VIDEO_ID, RUN_ID)  # columns with per-file min/max statistics in the Delta log

    @property
    def stored(self) -> bool:
        return self.kind != "view"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        """The schema of the stored table (and of every data file in it)."""
        return pa.schema([c.field() for c in self.columns],
                         metadata={b"schema_version": str(SCHEMA_VERSION).encode(), b"producer": PRODUCER.encode(),
                                   b"table": self.name.encode()})

    @property
    def delta_configuration(self) -> dict[str, str]:
        """Delta table properties: statistics on the key columns only (small checkpoints), a checkpoint every 100
        commits, expired log files cleaned up after a day, and the schema version of this contract."""
        return {
            "delta.dataSkippingStatsColumns": ",".join(self.stats),
            "delta.checkpointInterval": "100",
            "delta.logRetentionDuration": "interval 1 days",
            "delta.enableExpiredLogCleanup": "true",
            "delta.deletedFileRetentionDuration": "interval 1 hours",
            SCHEMA_VERSION_PROPERTY: str(SCHEMA_VERSION),
        }


_VIDEO = Column(VIDEO_ID, pa.string(), "content-derived video id: first 16 hex chars of the file's sha256")
_RUN = Column(RUN_ID, pa.string(), "run that wrote the row: a row is live when its run is the video's live run")
_FRAME = Column(FRAME_IDX, _I32, "0-based index of the frame in the decoded source stream (before stride)")
_TIME = Column(TIMESTAMP_S, _F64, "presentation timestamp of the frame, seconds from the stream start")

VIDEO_COLUMNS = (
    _VIDEO,
    Column(CONTENT_SHA256, pa.string(), "sha256 of the file's bytes, 64 hex chars (a live segment, which has no "
                                        "file: of the text 'live:<session_id>:<segment_index>')"),
    Column(SOURCE_URI, pa.string(), "where the file was read from (path or URI) when it was last processed"),
    Column(SIZE_BYTES, _I64, "file size in bytes (a live segment: bytes of the stream's packets received in it)"),
    Column(DURATION_S, _F64, "stream duration in seconds", nullable=True),
    Column(FPS, _F64, "average frame rate (frames per second) of the video stream", nullable=True),
    Column(WIDTH_PX, _I32, "displayed width in pixels (after display rotation)"),
    Column(HEIGHT_PX, _I32, "displayed height in pixels (after display rotation)"),
    Column(ROTATION_DEG, _I16, "display rotation applied to the decoded frames, degrees counter-clockwise"),
    Column(FRAME_COUNT, _I64, "number of frames in the stream (decoded count when the container has none; a live "
                               "segment: frames decoded in it, those the model skipped included)"),
    Column(CODEC, pa.string(), "codec name of the video stream", nullable=True),
)

VIDEOS = Table("videos", "One row per video: what the source file is (the video columns of its live run).",
               VIDEO_COLUMNS, kind="view")

RUNS = Table(
    "runs",
    "One row per committed run: the video it read, the model identity and every parameter. The live run of a "
    "video is its latest; committing this row is what makes a run's rows visible.",
    (
        *VIDEO_COLUMNS[:1],
        _RUN,
        *VIDEO_COLUMNS[1:],
        Column(MODEL_VERSION, pa.string(), "model identity: 'human3r-<preset>-<first 16 hex of the checkpoint's "
                                           "sha256>', or 'untrained-<preset>-seed<n>' for random weights"),
        Column(CHECKPOINT_SHA256, pa.string(), "sha256 of the checkpoint file; null for untrained weights",
               nullable=True),
        Column(PRESET, pa.string(), "network configuration preset (672S, 672B, 672L, 896L, tiny)"),
        Column(PARAMS_JSON, pa.string(), "the row-changing parameters of the run as canonical JSON (sorted keys)"),
        Column(PARAMS_HASH, pa.string(), "sha256 prefix of params_json; with model_version it decides re-runs"),
        Column(SCHEMA_VERSION_COL, _I32, "dataset schema version the rows were written with"),
        Column(STATUS, pa.string(), "'complete' for committed runs"),
        Column(STARTED_AT, _TS, "when the run started (UTC)"),
        Column(FINISHED_AT, _TS, "when the rows were committed (UTC); the latest run of a video is its live run"),
        Column(SECONDS, _F64, "wall-clock seconds of the run"),
        Column(N_FRAMES, _I64, "rows written to frames"),
        Column(N_HUMAN_ROWS, _I64, "rows written to humans (person x frame)"),
        Column(N_TRACKS, _I32, "distinct track ids"),
        Column(N_POINTS, _I64, "rows written to points"),
        Column(N_DECODE_ERRORS, _I32, "packets or frames the decoder could not read (the video still completed)"),
        Column(HOST, pa.string(), "machine that ran it", nullable=True),
        # live segments (`human3r live`): null for the run of a video file. Added in place (nullable, schema 2
        # unchanged): Delta schema evolution adds them to older runs tables on their next append
        Column(CAMERA, pa.string(), "live segment: the camera's name (one live process or actor per camera)",
               nullable=True),
        Column(SESSION_ID, pa.string(), "live segment: its session (32 hex chars; one recurrent state, world frame "
                                        "and set of track ids from the first segment to the last)", nullable=True),
        Column(SEGMENT_INDEX, _I32, "live segment: 0, 1, 2, ... within its session", nullable=True),
        Column(SEGMENT_START_S, _F64, "live segment: stream time of its first frame, seconds from the session's "
                                      "first frame (= its frames' smallest timestamp_s)", nullable=True),
        Column(GAP_BEFORE_S, _F64, "live segment: seconds without frames just before it (the stream dropped and "
                                   "came back: within the session's gap limit the session goes on, beyond it this "
                                   "is segment 0 of a new session); null when frames came without a break",
               nullable=True),
        Column(N_FRAMES_DROPPED, _I64, "live segment: frames decoded but skipped because the model was busy (the "
                                       "model takes the newest frame; frame_idx counts every decoded frame)",
               nullable=True),
    ),
    kind="runs",
    sort_by=(VIDEO_ID, FINISHED_AT),
    stats=(VIDEO_ID, RUN_ID, FINISHED_AT),
)

FAILURES = Table(
    "failures",
    "The latest failure of each source that did not complete. A later run of the same source removes it, and a later "
    "successful probe removes a probe failure (such as a transient read error, error_type TransientReadError).",
    (
        Column(SOURCE_URI, pa.string(), "the input as given (path or URI)"),
        Column(VIDEO_ID, pa.string(), "video id when the content could be hashed, else null", nullable=True),
        Column(STAGE, pa.string(), "where it failed: probe, decode, inference, write, timeout, ..."),
        Column(ERROR_TYPE, pa.string(), "exception class name; TransientReadError: the file could not be fetched this "
                                        "time (network, throttling, timeout), no verdict on it: retried"),
        Column(MESSAGE, pa.string(), "one-line reason"),
        Column(RUN_ID, pa.string(), "run that failed", nullable=True),
        Column(FAILED_AT, _TS, "when it failed (UTC)"),
    ),
    kind="events",
    key=(SOURCE_URI,),
    latest_by=FAILED_AT,
    stats=(SOURCE_URI, FAILED_AT),
)

SOURCES = Table(
    "sources",
    "Every video file discovery has seen: its size and modification time, and the facts probing it found (content "
    "hash, header) or why it could not be probed. A rescan reads only files whose size or modification time changed, "
    "and files whose probe failed for a transient reason once their retry_after has passed. Nothing here depends on "
    "a run's options: refusals such as a frame size above max_side are decided by each run from these facts.",
    (
        Column(SOURCE_URI, pa.string(), "the file's path or URI, as listed"),
        Column(SIZE_BYTES, _I64, "file size in bytes when probed; null when it could not be stat'ed", nullable=True),
        Column(MTIME_NS, _I64, "modification time when probed, nanoseconds since the epoch", nullable=True),
        *(dataclasses.replace(c, nullable=True, doc=f"{c.doc} (null when it could not be probed)")
          for c in VIDEO_COLUMNS if c.name not in (SOURCE_URI, SIZE_BYTES)),
        Column(PROBED_AT, _TS, "when it was probed (UTC); the latest row of a source counts"),
        Column(PROBE_ERROR, pa.string(), "why it could not be probed (one line), null when it could", nullable=True),
        # added in place (nullable, schema 2 unchanged): Delta schema evolution adds them to older tables on append
        Column(PROBE_TRANSIENT, pa.bool_(), "with probe_error: true when the bytes could not be fetched this time "
                                            "(network, throttling, timeout: probed again after retry_after), false "
                                            "when the file itself is unusable (not a video, empty, no video stream: "
                                            "probed again only when it changes or with --force); null without "
                                            "probe_error, and in rows written before this column (probed again)",
               nullable=True),
        Column(PROBE_ATTEMPTS, _I32, "transient probe failures in a row of this file (1, 2, ...); null otherwise",
               nullable=True),
        Column(RETRY_AFTER, _TS, "transient failure: the first run after this time (UTC) probes the file again "
                                 "(back-off doubling per attempt); null otherwise", nullable=True),
    ),
    kind="cache",
    key=(SOURCE_URI,),
    latest_by=PROBED_AT,
    stats=(SOURCE_URI,),
)

FRAMES = Table(
    "frames",
    "One row per processed frame: camera pose and intrinsics.",
    (
        _VIDEO,
        _RUN,
        _FRAME,
        _TIME,
        Column(CAM_TO_WORLD, _vec(16), "camera-to-world 4x4, row-major (16 floats); translation in metres, world "
                                       "frame"),
        Column(FX_SRC_PX, _F32, "focal length x, source-video pixels"),
        Column(FY_SRC_PX, _F32, "focal length y, source-video pixels"),
        Column(CX_SRC_PX, _F32, "principal point x, source-video pixels"),
        Column(CY_SRC_PX, _F32, "principal point y, source-video pixels"),
        Column(FX_WORK_PX, _F32, "focal length x at working resolution, pixels"),
        Column(FY_WORK_PX, _F32, "focal length y at working resolution, pixels"),
        Column(CX_WORK_PX, _F32, "principal point x at working resolution, pixels"),
        Column(CY_WORK_PX, _F32, "principal point y at working resolution, pixels"),
        Column(WORK_WIDTH_PX, _I32, "working-resolution width (after resize and centre crop)"),
        Column(WORK_HEIGHT_PX, _I32, "working-resolution height"),
        Column(N_HUMANS, _I16, "people detected in this frame (rows in humans)"),
        Column(CONF_MEAN, _F32, "mean confidence of the frame's pointmap (the one the points come from)"),
        Column(CONF_MEDIAN, _F32, "median confidence of the frame's pointmap (the one the points come from)"),
    ),
    sort_by=(VIDEO_ID, FRAME_IDX),
)

HUMANS = Table(
    "humans",
    "One row per person per frame: SMPL-X parameters, track id, positions in camera and world frames.",
    (
        _VIDEO,
        _RUN,
        _FRAME,
        _TIME,
        Column(TRACK_ID, _I32, "person track id, stable across the frames of one video"),
        Column(DETECTION_SCORE, _F32, "detection score in [0, 1] (after NMS)"),
        Column(GLOBAL_ORIENT_CAM, _vec(3), "root (pelvis) orientation, axis-angle radians, camera frame"),
        Column(BODY_POSE, _vec(63), "21 body joints, axis-angle radians, parent-relative (SMPL-X order)"),
        Column(LEFT_HAND_POSE, _vec(45), "15 left-hand joints, axis-angle radians (flat hand mean, no PCA)"),
        Column(RIGHT_HAND_POSE, _vec(45), "15 right-hand joints, axis-angle radians (flat hand mean, no PCA)"),
        Column(JAW_POSE, _vec(3), "jaw, axis-angle radians"),
        Column(BETAS, _vec(10), "SMPL-X shape coefficients (10, neutral model)"),
        Column(EXPRESSION, _vec(10), "SMPL-X expression coefficients (10)"),
        Column(HEAD_CAM_M, _vec(3), "head-joint position in the camera frame, metres, as the network predicts it"),
        Column(HEAD_WORLD_M, _vec(3), "head-joint position in the world frame, metres"),
        Column(GLOBAL_ORIENT_WORLD, _vec(3), "root orientation, axis-angle radians, world frame"),
        Column(TRANSL_WORLD_M, _vec(3), "SMPL-X `transl` (pelvis convention) that poses the body in the world frame "
                                        "with global_orient_world; null without a body model", nullable=True),
        Column(JOINTS_WORLD_M, pa.list_(_vec(3)), "SMPL-X joints (127, smplx order) in the world frame, metres; "
                                                  "null without a body model", nullable=True),
    ),
    sort_by=(VIDEO_ID, FRAME_IDX, TRACK_ID),
)

POINTS = Table(
    "points",
    "Scene points in the world frame, subsampled per frame (run parameter points_per_frame): the camera-frame "
    "pointmap moved by the frame's cam_to_world (world_points 'pose', the default and the reference demo's rule) or "
    "the network's world-view pointmap ('head').",
    (
        _VIDEO,
        _RUN,
        _FRAME,
        Column(X_M, _F32, "x, world frame, metres"),
        Column(Y_M, _F32, "y, world frame, metres"),
        Column(Z_M, _F32, "z, world frame, metres"),
        Column(RED, _I16, "red 0-255 from the frame"),
        Column(GREEN, _I16, "green 0-255 from the frame"),
        Column(BLUE, _I16, "blue 0-255 from the frame"),
        Column(CONF, _F32, "pointmap confidence (>= 1; higher is more reliable)"),
    ),
    sort_by=(VIDEO_ID, FRAME_IDX),
)

# sessions (view): a live session put back together from its segments (the live runs of one session_id)
N_SEGMENTS, FIRST_SEGMENT, LAST_SEGMENT, MISSING_SEGMENTS = "n_segments", "first_segment", "last_segment", \
    "missing_segments"
LAST_COMMITTED_AT, STREAM_S, N_GAPS, GAP_S, VIDEO_IDS = "last_committed_at", "stream_s", "n_gaps", "gap_s", "video_ids"
SESSIONS = Table(
    "sessions",
    "One row per live session (`human3r live`, flow `live-cameras`): its segments are the live runs with its "
    "session_id, each a video whose rows are in the session's world frame (the camera of the session's first "
    "frame) with the session's track ids, and frame_idx / timestamp_s counting from the session's start, so "
    "`SELECT * FROM humans JOIN runs USING (video_id) WHERE session_id = ?` is the whole session. A crash loses at "
    "most the segment that was open (missing_segments counts holes, not that one).",
    (
        Column(SESSION_ID, pa.string(), "the session (runs.session_id)"),
        Column(CAMERA, pa.string(), "the camera's name", nullable=True),
        Column(SOURCE_URI, pa.string(), "the stream it read (credentials removed)"),
        Column(MODEL_VERSION, pa.string(), "model identity of its segments"),
        Column(N_SEGMENTS, _I64, "segments committed"),
        Column(FIRST_SEGMENT, _I32, "smallest segment_index committed (0 unless segments were removed)"),
        Column(LAST_SEGMENT, _I32, "largest segment_index committed"),
        Column(MISSING_SEGMENTS, _I64, "segment indices between the first and the last that are not committed"),
        Column(STARTED_AT, _TS, "when its first committed segment started (UTC)"),
        Column(LAST_COMMITTED_AT, _TS, "when its last segment was committed (UTC)"),
        Column(STREAM_S, _F64, "seconds of stream its segments cover (sum of their duration_s)", nullable=True),
        Column(N_FRAMES, _I64, "processed frames (rows of frames)"),
        Column(N_FRAMES_DROPPED, _I64, "frames skipped because the model was busy", nullable=True),
        Column(N_HUMAN_ROWS, _I64, "rows of humans (person x frame)"),
        Column(GAP_BEFORE_S, _F64, "the break before its first segment when the session began because the "
                                   "previous one's stream stayed away too long; null otherwise", nullable=True),
        Column(N_GAPS, _I64, "breaks inside the session (stream dropped and came back within the gap limit)"),
        Column(GAP_S, _F64, "seconds of those breaks"),
        Column(VIDEO_IDS, pa.list_(pa.string()), "its segments' video ids, in segment order"),
    ),
    kind="view",
)

# live_status (events): the health of each camera's live process, the latest row per camera
STATE, SEGMENTS_COMMITTED, FRAMES_DECODED, FRAMES_PROCESSED = "state", "segments_committed", "frames_decoded", \
    "frames_processed"
FRAMES_DROPPED, FPS_IN, FPS_OUT, LATENCY_P50_MS, LATENCY_P95_MS = "frames_dropped", "fps_in", "fps_out", \
    "latency_p50_ms", "latency_p95_ms"
PEOPLE_NOW, LAST_VIDEO_ID, RECONNECTS, RESTARTS, PID = "people_now", "last_video_id", "reconnects", "restarts", "pid"
UPDATED_AT, STATUS_INTERVAL_S, FEED_URL = "updated_at", "status_interval_s", "feed_url"
LIVE_STATES = ("starting", "running", "reconnecting", "stopped", "failed")  # live_status.state
LIVE_STATUS = Table(
    "live_status",
    "The health of each live camera (`human3r live`, flow `live-cameras`), written by its process every "
    "status_interval_s seconds and when its state changes: the latest row per camera counts (the view), every "
    "row is kept in live_status_all. A row older than a few intervals means the process is gone.",
    (
        Column(CAMERA, pa.string(), "the camera's name"),
        Column(SOURCE_URI, pa.string(), "the stream it reads (credentials removed)"),
        Column(STATE, pa.string(), "starting | running | reconnecting (the stream dropped: trying again with "
                                   "back-off) | stopped (ended cleanly) | failed (see message)"),
        Column(MESSAGE, pa.string(), "why it is reconnecting or failed (one line)", nullable=True),
        Column(SESSION_ID, pa.string(), "the session it is in (null between sessions)", nullable=True),
        Column(SEGMENT_INDEX, _I32, "the open segment's index (null when none is open)", nullable=True),
        Column(SEGMENTS_COMMITTED, _I32, "segments this process committed"),
        Column(LAST_VIDEO_ID, pa.string(), "video_id of the last segment committed", nullable=True),
        Column(LAST_COMMITTED_AT, _TS, "when the last segment was committed (UTC)", nullable=True),
        Column(FRAMES_DECODED, _I64, "frames decoded by this process"),
        Column(FRAMES_PROCESSED, _I64, "frames the model processed"),
        Column(FRAMES_DROPPED, _I64, "frames skipped because the model was busy (decoded - processed, less the "
                                     "few in the queue)"),
        Column(FPS_IN, _F32, "frames decoded per second over the last status interval"),
        Column(FPS_OUT, _F32, "frames processed per second over the last status interval"),
        Column(LATENCY_P50_MS, _F32, "median milliseconds from a frame's arrival (decoded) to its feed message, "
                                     "over the last status interval", nullable=True),
        Column(LATENCY_P95_MS, _F32, "95th percentile of the same", nullable=True),
        Column(PEOPLE_NOW, _I32, "people in the last processed frame"),
        Column(RECONNECTS, _I32, "times the stream dropped and was reopened"),
        Column(RESTARTS, _I32, "times the deployment restarted this camera's actor (0 for `human3r live`)"),
        Column(MODEL_VERSION, pa.string(), "model identity"),
        Column(HOST, pa.string(), "machine that runs it", nullable=True),
        Column(PID, _I64, "its process id"),
        Column(FEED_URL, pa.string(), "its WebSocket feed of people in the world (ws://host:port/feed); null "
                                      "without one", nullable=True),
        Column(STARTED_AT, _TS, "when this process started (UTC)"),
        Column(UPDATED_AT, _TS, "when this row was written (UTC); the latest row per camera counts"),
        Column(STATUS_INTERVAL_S, _F32, "seconds between two rows while it runs"),
    ),
    kind="events",
    key=(CAMERA,),
    latest_by=UPDATED_AT,
    sort_by=(CAMERA, UPDATED_AT),
    stats=(CAMERA, UPDATED_AT),
)

# track_quality (derived): per-track label quality, computed by tasks/labels/quality.py (`human3r labels score`)
N_FRAMES_TRACK, FIRST_FRAME_IDX, LAST_FRAME_IDX = "n_frames", "first_frame_idx", "last_frame_idx"
VISIBLE_FRAC, N_GAPS, MAX_GAP_FRAMES = "visible_frac", "n_gaps", "max_gap_frames"
DETECTION_SCORE_MEAN, POINT_CONF_MEAN, N_POINTS_NEAR = "detection_score_mean", "point_conf_mean", "n_points_near"
HAS_JOINTS, JITTER_MPS3, MAX_JUMP_M = "has_joints", "jitter_mps3", "max_jump_m"
FOOT_SLIDING_MPS, FOOT_CONTACT_FRAC = "foot_sliding_mps", "foot_contact_frac"
GROUND_PENETRATION_M, GROUND_PENETRATION_MAX_M = "ground_penetration_m", "ground_penetration_max_m"
BETAS_NORM_MIN, BETAS_NORM_MAX, BETAS_ABS_MAX = "betas_norm_min", "betas_norm_max", "betas_abs_max"
GROUND_NORMAL_WORLD, GROUND_OFFSET_M = "ground_normal_world", "ground_offset_m"
GROUND_INLIER_FRAC = "ground_inlier_frac"
COMPUTED_AT = "computed_at"
# The metrics' thresholds are the algorithm's (tasks/labels/quality.py, tasks/labels/ground.py); the column docs below
# state the values in use, and a test holds them to the code.
_GROUND = ("the video's ground plane, fitted to its live scene points (RANSAC over planes whose normal is within "
           "30 deg of the first camera's up axis -y and that lie below the people's heads, 3 cm inliers, most "
           "inliers wins, refined by least squares on the inliers)")
TRACK_QUALITY = Table(
    "track_quality",
    "Quality of each person track of a video's live run, one row per (video_id, track_id): what pseudo-label "
    "selection filters on (`human3r labels build --where ...`). Computed by `human3r labels score` "
    "(tasks/labels/quality.py) from the run's humans, frames and points rows. 'Joints' are the stored SMPL-X joints "
    "(joints_world_m); without them (no body model) the motion metrics use the head joint and the ground metrics "
    f"are null. Ground: {_GROUND}.",
    (
        _VIDEO,
        _RUN,
        Column(TRACK_ID, _I32, "person track id (humans.track_id)"),
        Column(N_FRAMES_TRACK, _I32, "processed frames in which the track was seen (its rows in humans)"),
        Column(FIRST_FRAME_IDX, _I32, "frame_idx of its first row"),
        Column(LAST_FRAME_IDX, _I32, "frame_idx of its last row"),
        Column(DURATION_S, _F64, "seconds from its first to its last row (timestamp_s difference)"),
        Column(VISIBLE_FRAC, _F32, "n_frames / processed frames of the run from its first to its last row, in (0, 1]; "
                                   "1 = seen in every processed frame of its span"),
        Column(N_GAPS, _I32, "gaps: runs of consecutive processed frames inside the span where the track is absent"),
        Column(MAX_GAP_FRAMES, _I32, "processed frames in the longest gap (0 without gaps)"),
        Column(DETECTION_SCORE_MEAN, _F32, "mean detection_score over its rows, in [0, 1]"),
        Column(POINT_CONF_MEAN, _F32, "mean pointmap confidence (points.conf, >= 1) of the scene points of the same "
                                      "frames within 0.25 m of one of its 22 body joints (without joints: within "
                                      "0.5 m of the head joint); null when no point is that close", nullable=True),
        Column(N_POINTS_NEAR, _I64, "how many scene points point_conf_mean averages"),
        Column(HAS_JOINTS, pa.bool_(), "every row has joints_world_m (a body model was used at reconstruct time)"),
        Column(JITTER_MPS3, _F32, "mean jerk, m/s^3: mean over windows of 4 consecutive processed frames (no gap) and "
                                  "over the 22 body joints (or the head joint) of "
                                  "norm(x[t+3] - 3 x[t+2] + 3 x[t+1] - x[t]) / dt^3, dt = the track's median time "
                                  "step; null with fewer than 4 consecutive frames", nullable=True),
        Column(MAX_JUMP_M, _F32, "largest head-joint displacement between consecutive processed frames (no gap), "
                                 "metres, world frame; null for a single frame", nullable=True),
        Column(FOOT_SLIDING_MPS, _F32, "foot sliding, m/s: mean over the foot points (smplx joints 60-65: big "
                                       "toe, small toe, heel of each foot) and consecutive processed frames where the "
                                       "point is within 5 cm of the ground (or below) in "
                                       "both, of its displacement parallel to the ground / dt; null without joints, "
                                       "ground or contacts", nullable=True),
        Column(FOOT_CONTACT_FRAC, _F32, "fraction of its frames with a foot point within 5 cm of the ground (or "
                                        "below); null without joints or ground", nullable=True),
        Column(GROUND_PENETRATION_M, _F32, "mean over its frames of max(0, -h), h = height of its lowest body joint "
                                           "or foot point above the ground plane, metres; null without joints or "
                                           "ground", nullable=True),
        Column(GROUND_PENETRATION_MAX_M, _F32, "largest max(0, -h) over its frames, metres; null without joints or "
                                               "ground", nullable=True),
        Column(BETAS_NORM_MIN, _F32, "smallest L2 norm of betas (the 10 shape coefficients) over its rows"),
        Column(BETAS_NORM_MAX, _F32, "largest L2 norm of betas over its rows (with betas_norm_min: the range of "
                                     "the norm)"),
        Column(BETAS_ABS_MAX, _F32, "largest abs(beta_i) over rows and coefficients (shapes are ~N(0, 1): > 3 is "
                                    "implausible)"),
        Column(GROUND_NORMAL_WORLD, _vec(3), "unit normal of the ground plane pointing up (floor -> people), world "
                                             "frame; null when the video has too few scene points", nullable=True),
        Column(GROUND_OFFSET_M, _F32, "d of the ground plane n.x + d = 0: the height of a point x above the floor is "
                                      "n.x + d, so the first camera is d metres above it", nullable=True),
        Column(GROUND_INLIER_FRAC, _F32, "fraction of the fitted points within 3 cm of the ground plane",
               nullable=True),
        Column(COMPUTED_AT, _TS, "when the row was computed (UTC); the latest row per (video_id, track_id) of the "
                                 "live run counts"),
    ),
    kind="derived",
    key=(VIDEO_ID, TRACK_ID),
    latest_by=COMPUTED_AT,
    sort_by=(VIDEO_ID, TRACK_ID),
)

# scenes (derived): fused scene clouds, computed by tasks/scenes/fuse.py (`human3r fuse`, flow `fuse-scenes`)
VOXEL_SIZE_M, CONF_MIN, PEOPLE_MARGIN_M, PEOPLE_FROM = "voxel_size_m", "conf_min", "people_margin_m", "people_from"
N_POINTS_IN, N_POINTS_FUSED, N_VOXELS, N_POINTS_OUT = "n_points_in", "n_points_fused", "n_voxels", "n_points_out"
SCENE_PATH, MESH_PATH, N_MESH_TRIANGLES, FUSED_AT = "scene_path", "mesh_path", "n_mesh_triangles", "fused_at"
EXPORTS_DIR = "_exports"  # files made from a run (fused scenes, GLB, BVH, meshes), beside the tables, never in them
EXPORT_DIR = "_exports/{video_id}/{run_id}"  # one folder per video and run
SCENE_FILE = "_exports/{video_id}/{run_id}/scene-{params_hash}.ply"  # the fused cloud of one fusion parameter set

SCENES = Table(
    "scenes",
    "One row per fusion of a video's live run into a scene: a voxel-fused, cleaned point cloud (binary PLY, world "
    "frame, metres) and optionally a Poisson surface mesh, with the counts of each step. Written by `human3r fuse` "
    "and the flow `fuse-scenes` (tasks/scenes/fuse.py); the files live under ROOT/_exports/, not in the table.",
    (
        _VIDEO,
        _RUN,
        Column(MODEL_VERSION, pa.string(), "model identity of the fused run (runs.model_version)"),
        Column(VOXEL_SIZE_M, _F32, "voxel edge length, metres: each output point is the mean of the points of one "
                                   "voxel (position, colour, confidence)"),
        Column(CONF_MIN, _F32, "points with a confidence below this were left out"),
        Column(PEOPLE_MARGIN_M, _F32, "points within this distance of a person of the same frame were left out; "
                                      "null when people were kept", nullable=True),
        Column(PEOPLE_FROM, pa.string(), "what the people were: 'mesh' (SMPL-X bodies posed with a body model), "
                                         "'joints' (stored joints_world_m), 'head' (a capsule from the head joint "
                                         "along the body axis); null when people were kept", nullable=True),
        Column(N_POINTS_IN, _I64, "points of the run (runs.n_points): what the fusion scanned"),
        Column(N_POINTS_FUSED, _I64, "points fused into voxels (after the confidence and people filters)"),
        Column(N_VOXELS, _I64, "occupied voxels"),
        Column(N_POINTS_OUT, _I64, "points in the written cloud (voxels with enough hits that are not statistical "
                                   "outliers)"),
        Column(SCENE_PATH, pa.string(), "the fused cloud (binary PLY with colours, confidence and hits): relative "
                                        "to the dataset root (_exports/<video_id>/<run_id>/scene-<hash>.ply) or "
                                        "absolute when written elsewhere"),
        Column(MESH_PATH, pa.string(), "Poisson surface mesh (PLY) beside it; null when not asked for",
               nullable=True),
        Column(N_MESH_TRIANGLES, _I64, "triangles of the mesh; null without a mesh", nullable=True),
        Column(PARAMS_JSON, pa.string(), "every fusion parameter as canonical JSON (sorted keys)"),
        Column(PARAMS_HASH, pa.string(), "sha256 prefix of params_json: a fusion with the same hash is not redone"),
        Column(SECONDS, _F64, "wall-clock seconds of the fusion"),
        Column(FUSED_AT, _TS, "when it finished (UTC); the latest row per video of its live run counts"),
    ),
    kind="derived",
    key=(VIDEO_ID,),
    latest_by=FUSED_AT,
    sort_by=(VIDEO_ID, FUSED_AT),
)

# evaluations (results): benchmark metrics of a model, written by tasks/evaluation (`human3r eval`, flow
# `evaluate-model`); one evaluation run per (model, parameters, protocol, benchmark, sequence), committed at once
PRECISION, PROTOCOL, BENCHMARK, SEQUENCE = "precision", "protocol", "benchmark", "sequence"
METRIC, ALIGNMENT, VALUE, COUNT, UNIT = "metric", "alignment", "value", "count", "unit"
N_SEQUENCES, DATA_ROOT, EVALUATED_AT = "n_sequences", "data_root", "evaluated_at"
EVAL_STATUSES = ("ok", "excluded", "failed")  # evaluations.status
EVAL_KEY = (MODEL_VERSION, PRECISION, PARAMS_HASH, PROTOCOL, BENCHMARK, SEQUENCE)  # one unit of evaluation

EVALUATIONS = Table(
    "evaluations",
    "Benchmark results of a model, one row per metric: per sequence, and the benchmark's average (sequence null). "
    "An evaluation run writes every row of one sequence (or of one average) in one commit; the live rows of a key "
    "(model_version, precision, params_hash, protocol, benchmark, sequence) are those of its latest run "
    "(evaluated_at, then run_id). Written by `human3r eval` and the flow `evaluate-model` (tasks/evaluation); read "
    "by `human3r eval report` and the dashboard's Models page.",
    (
        Column(RUN_ID, pa.string(), "evaluation run: every row of one sequence's (or one average's) evaluation"),
        Column(MODEL_VERSION, pa.string(), "model identity, as runs.model_version ('human3r-<preset>-<sha256[:16]>', "
                                           "'untrained-<preset>-seed<n>')"),
        Column(CHECKPOINT_SHA256, pa.string(), "sha256 of the checkpoint file; null for untrained weights",
               nullable=True),
        Column(PRESET, pa.string(), "network configuration preset (672S, 672B, 672L, 896L, tiny)"),
        Column(PRECISION, pa.string(), "dtype the network computed in: float32, bfloat16 or float16"),
        Column(PARAMS_JSON, pa.string(), "every parameter that changes the results, canonical JSON: the benchmark's "
                                         "protocol (working size, reset interval, TTT3R, frames), body model and "
                                         "SMPL files by content hash, max_frames"),
        Column(PARAMS_HASH, pa.string(), "sha256 prefix of params_json; with model_version and precision it decides "
                                         "what is evaluated again"),
        Column(PROTOCOL, pa.string(), "'reference' (the published evaluation code, defects included) or "
                                      "'corrected' (its defects fixed)"),
        Column(BENCHMARK, pa.string(), "3dpw, emdb1, emdb2, rich, tum, tum_<N>, bonn, bonn_<N>"),
        Column(SEQUENCE, pa.string(), "the benchmark's sequence name (e.g. 'P0/09_outdoor_walk'); null = the "
                                      "benchmark's average over its evaluated sequences", nullable=True),
        Column(METRIC, pa.string(), "metric name (pa_mpjpe, w_mpjpe100, rte_pct, ate_m, abs_rel, ..., and the "
                                    "detection counts n_gt, n_matched, n_missed, n_false_pos); null on a failed row",
               nullable=True),
        Column(ALIGNMENT, pa.string(), "depth benchmarks: how the prediction was aligned to the ground truth "
                                       "('scale': one scale per sequence, 'metric': none); null elsewhere",
               nullable=True),
        Column(VALUE, _F64, "the metric's value in `unit` (NaN when it cannot be computed); null on a failed row",
               nullable=True),
        Column(COUNT, _I64, "entries the value averages (matched person-frames, frames, pose pairs, pixels) or, for "
                            "an average, its total weight; 0 with NaN", nullable=True),
        Column(UNIT, pa.string(), "mm, m, deg, pct, 10m/s3 (jitter), ratio, log, fraction, count", nullable=True),
        Column(STATUS, pa.string(), "'ok'; 'excluded': evaluated, but the value is undefined or the protocol's "
                                    "average leaves it out (message says why); 'failed': the sequence could not be "
                                    "evaluated (message), evaluated again by the next run"),
        Column(ERROR_TYPE, pa.string(), "exception class of a failed or excluded row", nullable=True),
        Column(MESSAGE, pa.string(), "one-line reason of a failed or excluded row; for an average, which sequences it "
                                     "covers when not all", nullable=True),
        Column(N_FRAMES, _I64, "frames the network processed for this sequence; for an average, their sum",
               nullable=True),
        Column(N_SEQUENCES, _I32, "sequences an average covers (null for a sequence's row)", nullable=True),
        Column(SECONDS, _F64, "wall-clock seconds of the sequence's evaluation (network and metrics)", nullable=True),
        Column(DATA_ROOT, pa.string(), "the benchmark folder the sequence was read from", nullable=True),
        Column(HOST, pa.string(), "machine that evaluated it", nullable=True),
        Column(EVALUATED_AT, _TS, "when the rows were committed (UTC); the latest run of a key is live"),
    ),
    kind="results",
    key=EVAL_KEY,
    latest_by=EVALUATED_AT,
    sort_by=(MODEL_VERSION, BENCHMARK, SEQUENCE, METRIC),
    stats=(MODEL_VERSION, BENCHMARK, RUN_ID),
)

TABLES: dict[str, Table] = {t.name: t for t in (VIDEOS, RUNS, FAILURES, SOURCES, FRAMES, HUMANS, POINTS,
                                                 TRACK_QUALITY, SCENES, EVALUATIONS, SESSIONS, LIVE_STATUS)}
STORED_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.stored)
DATA_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.kind == "data")


def describe() -> str:
    """The whole schema as Markdown (what `human3r schema` prints and the README links to)."""
    lines = [f"# Dataset schema, version {SCHEMA_VERSION}", "", "Stored as Delta Lake tables; see "
             "`storage/schema.py` (and the README) for which rows are live.", ""]
    for t in TABLES.values():
        kind = "view over the live runs" if t.kind == "view" else f"Delta table `{t.name}/` ({t.kind})"
        lines += [f"## {t.name}", "", f"{t.doc} ({kind})", "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type}{' (nullable)' if c.nullable else ''} | {c.doc} |" for c in t.columns]
        lines.append("")
    return "\n".join(lines)
