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
  into this one frame exactly as the reference does.
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
2. **frames, humans, points**: a row is live when its ``run_id`` is a live run. Rows of a replaced run, or of a run
   that crashed before its ``runs`` row, are ignored, and are deleted by ``human3r vacuum`` after a grace period.
3. **videos** is not stored: it is the video columns of the live runs.
4. **failures**: the latest row per ``source_uri``, unless a run of the same ``source_uri`` finished after it.
5. **sources**: the latest row per ``source_uri`` (a cache of what discovery has seen).
6. **derived tables** (computed from a run's rows, kind ``derived``): the latest row per ``key`` (by
   ``latest_by``) among the rows whose ``run_id`` is a live run.

Read ``runs`` first, then the data tables (or both in one snapshot): rows are committed before the run that makes
them visible, and replaced rows are kept for the grace period, so that order never shows a half-written video.
``storage.catalog`` defines these rules as the views ``runs``, ``videos``, ``frames``, ``humans``, ``points``,
``failures`` and ``sources``; the stored tables are also reachable as ``<table>_all``.
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

# sources (what discovery has seen)
MTIME_NS = "mtime_ns"
PROBED_AT = "probed_at"
PROBE_ERROR = "probe_error"

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


def run_started_at(run_id: str) -> float | None:
    """Seconds since the epoch at which the run `run_id` started; None for ids not made by :func:`new_run_id`."""
    try:
        return int(run_id[:14], 16) / 1e6
    except ValueError:
        return None


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
        return pa.field(self.name, self.type, nullable=self.nullable, metadata={b"doc": self.doc.encode()})


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of the dataset: a Delta table under the root, or (``kind="view"``) a view the catalog derives.

    kind: ``data`` (rows of one run, live when their run is: frames, humans, points), ``runs`` (one row per
    committed run), ``events`` (failures) and ``cache`` (sources), both the latest row per ``key``, ``derived``
    (computed from a run's rows, e.g. quality scores or fused scenes: the latest row per ``key`` among those of live
    runs), or ``view``.
    """

    name: str
    doc: str
    columns: tuple[Column, ...]
    kind: str = "data"
    sort_by: tuple[str, ...] = ()  # order of the rows within a file
    key: tuple[str, ...] = ()  # events, cache, derived: the columns whose latest row counts
    latest_by: str | None = None  # events, cache, derived: the column that orders rows of one key
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
    Column(CONTENT_SHA256, pa.string(), "sha256 of the file's bytes, 64 hex chars"),
    Column(SOURCE_URI, pa.string(), "where the file was read from (path or URI) when it was last processed"),
    Column(SIZE_BYTES, _I64, "file size in bytes"),
    Column(DURATION_S, _F64, "stream duration in seconds", nullable=True),
    Column(FPS, _F64, "average frame rate (frames per second) of the video stream", nullable=True),
    Column(WIDTH_PX, _I32, "displayed width in pixels (after display rotation)"),
    Column(HEIGHT_PX, _I32, "displayed height in pixels (after display rotation)"),
    Column(ROTATION_DEG, _I16, "display rotation applied to the decoded frames, degrees counter-clockwise"),
    Column(FRAME_COUNT, _I64, "number of frames in the stream (decoded count when the container has none)"),
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
        Column(PARAMS_JSON, pa.string(), "every run parameter as canonical JSON (sorted keys)"),
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
    ),
    kind="runs",
    sort_by=(VIDEO_ID, FINISHED_AT),
    stats=(VIDEO_ID, RUN_ID, FINISHED_AT),
)

FAILURES = Table(
    "failures",
    "The latest failure of each source that did not complete. A later run of the same source removes it.",
    (
        Column(SOURCE_URI, pa.string(), "the input as given (path or URI)"),
        Column(VIDEO_ID, pa.string(), "video id when the content could be hashed, else null", nullable=True),
        Column(STAGE, pa.string(), "where it failed: probe, decode, inference, write, timeout, ..."),
        Column(ERROR_TYPE, pa.string(), "exception class name"),
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
    "Every video file discovery has seen: its size and modification time, and what probing it found. A rescan "
    "reads only files whose size or modification time changed.",
    (
        Column(SOURCE_URI, pa.string(), "the file's path or URI, as listed"),
        Column(SIZE_BYTES, _I64, "file size in bytes when probed; null when it could not be stat'ed", nullable=True),
        Column(MTIME_NS, _I64, "modification time when probed, nanoseconds since the epoch", nullable=True),
        *(dataclasses.replace(c, nullable=True, doc=f"{c.doc} (null when it could not be probed)")
          for c in VIDEO_COLUMNS if c.name not in (SOURCE_URI, SIZE_BYTES)),
        Column(PROBED_AT, _TS, "when it was probed (UTC); the latest row of a source counts"),
        Column(PROBE_ERROR, pa.string(), "why it could not be used (one line), null when it could", nullable=True),
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
        Column(CONF_MEAN, _F32, "mean pointmap confidence of the frame"),
        Column(CONF_MEDIAN, _F32, "median pointmap confidence of the frame"),
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
    "Scene points in the world frame, subsampled per frame (run parameter points_per_frame).",
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

TABLES: dict[str, Table] = {t.name: t for t in (VIDEOS, RUNS, FAILURES, SOURCES, FRAMES, HUMANS, POINTS)}
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
