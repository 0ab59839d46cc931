"""Parquet IO in symmetric pairs: `write_video` / `read_table`, `write_failure` / `read_failures`.

Every per-video file holds one row group (so DuckDB and pyarrow prune to a single video), carries the schema
version in its key-value metadata, and is written under a fresh generation name before the video's commit pointer
is swapped (see `storage.manifest`). Tables handed to the writer are checked against `storage.schema` and every
mismatch is reported in one error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import socket
from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from storage import fs as _fs
from storage import manifest
from storage import schema as S
from storage.errors import SchemaMismatchError

COMPRESSION = "zstd"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What the caller knows about a run; the writer adds the counts, timings and schema version."""

    run_id: str
    model_version: str  # '<checkpoint>@<sha256 prefix>' or 'untrained:<preset>:<seed>'
    preset: str
    params: Mapping  # every parameter of the run (JSON-serialisable)
    started_at: dt.datetime
    source_uri: str
    checkpoint_sha256: str | None = None
    n_decode_errors: int = 0
    host: str | None = dataclasses.field(default_factory=socket.gethostname)

    @property
    def params_hash(self) -> str:
        return manifest.params_hash(dict(self.params))


# ------------------------------------------------------------------------------------------------ validation
def conform(table: S.Table, data: pa.Table | Mapping, *, drop_partition: bool = True) -> pa.Table:
    """`data` as an Arrow table with exactly `table`'s file schema, or one error listing every problem."""
    target = table.arrow_schema if drop_partition else table.full_schema
    if isinstance(data, Mapping):
        names = list(data)
        got = {k: data[k] for k in names}
    else:
        names = data.column_names
        got = {k: data.column(k) for k in names}
    if drop_partition and table.per_video:
        got.pop(S.VIDEO_ID, None)
    expected = set(target.names)
    missing, unexpected = sorted(expected - set(got)), sorted(set(got) - expected)
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if unexpected:
        problems.append(f"unexpected columns {unexpected}")
    arrays = []
    for field in target:
        if field.name not in got:
            continue
        try:
            arr = pa.array(got[field.name], type=field.type) if not isinstance(
                got[field.name], pa.Array | pa.ChunkedArray) else got[field.name].cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError) as err:
            problems.append(f"column {field.name!r} cannot be {field.type}: {str(err).splitlines()[0]}")
            continue
        if not field.nullable and arr.null_count:
            problems.append(f"column {field.name!r} has {arr.null_count} nulls but is not nullable")
        arrays.append(arr)
    if problems:
        raise SchemaMismatchError(f"table {table.name!r} does not match schema v{S.SCHEMA_VERSION}: "
                                  + "; ".join(problems))
    out = pa.Table.from_arrays(arrays, schema=target)
    lengths = {len(a) for a in arrays}
    assert len(lengths) <= 1, lengths
    if table.sort_by and out.num_rows:
        out = out.sort_by([(c, "ascending") for c in table.sort_by])
    return out


def _write_parquet(root: _fs.Root, rel: str, table: pa.Table) -> None:
    """One file, one row group, written under a name no reader lists until it is complete."""
    kwargs = dict(compression=COMPRESSION, row_group_size=max(table.num_rows, 1), write_statistics=True)
    if root.is_local:
        _fs.ensure_dir(root, rel.rsplit("/", 1)[0])
        tmp = _fs.tmp_name_for(root, rel)
        try:
            pq.write_table(table, root.path(tmp), **kwargs)
            _fs.publish(root, tmp, rel)
        finally:
            _fs.delete(root, tmp)
    else:
        buf = io.BytesIO()
        pq.write_table(table, buf, **kwargs)
        _fs.write_bytes_atomic(root, rel, buf.getvalue())


# ------------------------------------------------------------------------------------------------ per video
def write_video(
    root: _fs.Root,
    video_id: str,
    *,
    run: RunInfo,
    videos: pa.Table | Mapping,
    frames: pa.Table | Mapping,
    humans: pa.Table | Mapping,
    points: pa.Table | Mapping,
) -> manifest.Commit:
    """Write every table of one video and make them visible together (atomically replacing a previous run)."""
    manifest.init_dataset(root)
    data = {
        S.VIDEOS.name: conform(S.VIDEOS, videos),
        S.FRAMES.name: conform(S.FRAMES, frames),
        S.HUMANS.name: conform(S.HUMANS, humans),
        S.POINTS.name: conform(S.POINTS, points),
    }
    if data[S.VIDEOS.name].num_rows != 1:
        raise SchemaMismatchError(f"videos must hold exactly one row per video, got {data['videos'].num_rows}")
    finished = manifest.utc_now()
    n_tracks = len(set(data[S.HUMANS.name].column(S.TRACK_ID).to_pylist()))
    data[S.RUNS.name] = conform(S.RUNS, {
        S.RUN_ID: [run.run_id], S.MODEL_VERSION: [run.model_version], S.CHECKPOINT_SHA256: [run.checkpoint_sha256],
        S.PRESET: [run.preset], S.PARAMS_JSON: [manifest.canonical_json(dict(run.params))],
        S.PARAMS_HASH: [run.params_hash], S.SCHEMA_VERSION_COL: [S.SCHEMA_VERSION], S.STATUS: ["complete"],
        S.STARTED_AT: [run.started_at], S.FINISHED_AT: [finished],
        S.SECONDS: [(finished - run.started_at).total_seconds()],
        S.N_FRAMES: [data[S.FRAMES.name].num_rows], S.N_HUMAN_ROWS: [data[S.HUMANS.name].num_rows],
        S.N_TRACKS: [n_tracks], S.N_POINTS: [data[S.POINTS.name].num_rows],
        S.N_DECODE_ERRORS: [run.n_decode_errors], S.HOST: [run.host],
    })

    generation = manifest.new_generation()
    files = {}
    for name in S.VIDEO_TABLES:
        rel = S.TABLE_FILE.format(table=name, video_id=video_id, generation=generation)
        _write_parquet(root, rel, data[name])
        files[name] = rel

    previous = manifest.read_commit(root, video_id)
    commit = manifest.Commit(
        video_id=video_id, generation=generation, run_id=run.run_id, model_version=run.model_version,
        params_hash=run.params_hash, schema_version=S.SCHEMA_VERSION, files=files,
        rows={name: data[name].num_rows for name in S.VIDEO_TABLES}, source_uri=run.source_uri,
        committed_at=finished.isoformat(),
    )
    manifest.write_commit(root, commit)  # <- the moment the new rows become visible
    manifest.clear_failure(root, run.source_uri)
    if previous is not None and previous.generation != generation:
        current = manifest.read_commit(root, video_id)  # another writer may have committed meanwhile
        keep = set(current.files.values()) if current else set()
        for rel in previous.files.values():
            if rel not in keep:
                _fs.delete(root, rel)
    return commit


def read_table(root: _fs.Root, name: str, video_ids: Iterable[str] | None = None) -> pa.Table:
    """The live rows of a per-video table (all videos, or the given ones), with `video_id` as a column."""
    table = S.TABLES[name]
    if not table.per_video:
        raise ValueError(f"{name!r} is not a per-video table; use read_failures")
    manifest.check_dataset(root)
    wanted = set(video_ids) if video_ids is not None else None
    parts = []
    for commit in manifest.list_commits(root):
        if wanted is not None and commit.video_id not in wanted:
            continue
        with root.fs.open_input_file(root.path(commit.files[name])) as f:
            t = pq.read_table(f, schema=table.arrow_schema)
        parts.append(t.add_column(0, pa.field(S.VIDEO_ID, pa.string(), nullable=False),
                                  pa.array([commit.video_id] * t.num_rows, pa.string())))
    if not parts:
        return table.full_schema.empty_table()
    return pa.concat_tables(parts).cast(table.full_schema)


# ------------------------------------------------------------------------------------------------ failures
def write_failure(
    root: _fs.Root, *, source_uri: str, stage: str, error: BaseException | str, run_id: str | None = None,
    video_id: str | None = None, error_type: str | None = None,
) -> None:
    """Record the latest failure of a source (replacing an older one of the same source)."""
    manifest.init_dataset(root)
    message = " ".join(str(error).split()) or type(error).__name__
    row = {
        S.SOURCE_URI: [source_uri], S.VIDEO_ID: [video_id], S.STAGE: [stage],
        S.ERROR_TYPE: [error_type or (type(error).__name__ if isinstance(error, BaseException) else "Error")],
        S.MESSAGE: [message[:2000]], S.RUN_ID: [run_id], S.FAILED_AT: [manifest.utc_now()],
    }
    _write_parquet(root, manifest.failure_path(source_uri), conform(S.FAILURES, row))


def read_failures(root: _fs.Root) -> pa.Table:
    manifest.check_dataset(root)
    parts = []
    for info in _fs.list_files(root, "failures"):
        if info.base_name.endswith(".parquet"):
            with root.fs.open_input_file(info.path) as f:
                parts.append(pq.read_table(f, schema=S.FAILURES.arrow_schema))
    return pa.concat_tables(parts) if parts else S.FAILURES.arrow_schema.empty_table()
