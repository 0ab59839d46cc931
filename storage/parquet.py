"""Parquet IO in symmetric pairs: `write_video` / `read_table`, `write_failure` / `read_failures`.

Every per-video file holds one video (so DuckDB and pyarrow prune to it by path), one row group per appended chunk
(one in all for `write_video`), carries the schema
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage import fs as _fs
from storage import manifest
from storage import schema as S
from storage.errors import SchemaMismatchError, StorageError

COMPRESSION = "zstd"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What the caller knows about a run; the writer adds the counts, timings and schema version."""

    run_id: str
    model_version: str  # 'human3r-<preset>-<sha256[:16]>' or 'untrained-<preset>-seed<n>' (see schema.RUNS)
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
            arr = _to_arrow(got[field.name], field.type)
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
    if table.sort_by and out.num_rows:
        out = out.sort_by([(c, "ascending") for c in table.sort_by])
    return out


def _to_arrow(value, type_: pa.DataType) -> pa.Array:
    """A column as Arrow; numpy (N, k) / (N, J, k) arrays go to (nested) fixed-size lists without Python objects."""
    if isinstance(value, pa.Array | pa.ChunkedArray):
        return value.cast(type_)
    if isinstance(value, np.ndarray) and value.ndim >= 2 and pa.types.is_fixed_size_list(type_):
        inner = type_.value_type
        flat = pa.array(np.ascontiguousarray(value, dtype=inner.to_pandas_dtype()).reshape(-1), type=inner)
        return pa.FixedSizeListArray.from_arrays(flat, type_.list_size)
    if isinstance(value, np.ndarray) and value.ndim == 3 and pa.types.is_list(type_) \
            and pa.types.is_fixed_size_list(type_.value_type):
        n, j = value.shape[:2]
        rows = _to_arrow(value.reshape(n * j, -1), type_.value_type)
        return pa.ListArray.from_arrays(pa.array(np.arange(0, n * j + 1, j, dtype=np.int32)), rows)
    return pa.array(value, type=type_)


def _write_parquet(root: _fs.Root, rel: str, table: pa.Table) -> None:
    """One file, one row group, written under a name no reader lists until it is complete."""
    kwargs = dict(compression=COMPRESSION, row_group_size=max(table.num_rows, 1), write_statistics=True)
    if root.is_local:
        _fs.ensure_dir(root, rel.rsplit("/", 1)[0])
        tmp = _fs.tmp_name_for(rel)
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
class VideoWriter:
    """Streams one video's rows into new-generation files, then makes them visible together with `commit`.

    Append as many chunks as you like (memory stays bounded by the chunk size); each chunk becomes a row group.
    Leaving the ``with`` block without `commit` (an exception, a crash) leaves the dataset as it was.

        with VideoWriter(root, video_id, run) as w:
            w.append("frames", chunk)        # any of frames / humans / points, any number of times
            w.commit(videos=row)             # the videos row; runs row and counts are filled in here
    """

    STREAMED = (S.FRAMES.name, S.HUMANS.name, S.POINTS.name)

    def __init__(self, root: _fs.Root, video_id: str, run: RunInfo):
        manifest.init_dataset(root)
        self.root, self.video_id, self.run = root, video_id, run
        self.generation = manifest.new_generation()
        self.files = {name: S.TABLE_FILE.format(table=name, video_id=video_id, generation=self.generation)
                      for name in S.VIDEO_TABLES}
        self.rows = dict.fromkeys(S.VIDEO_TABLES, 0)
        self._tracks: set[int] = set()
        self._open: dict[str, tuple[pq.ParquetWriter, object, str]] = {}  # table -> (writer, sink, tmp path)
        self.committed: manifest.Commit | None = None

    def _writer(self, name: str) -> pq.ParquetWriter:
        if name not in self._open:
            rel = self.files[name]
            if self.root.is_local:
                _fs.ensure_dir(self.root, rel.rsplit("/", 1)[0])
                tmp = _fs.tmp_name_for(rel)
                sink = self.root.fs.open_output_stream(self.root.path(tmp))
            else:  # the generation name is invisible until the commit; an S3 upload completes on close
                tmp = rel
                sink = self.root.fs.open_output_stream(self.root.path(rel))
            writer = pq.ParquetWriter(sink, S.TABLES[name].arrow_schema, compression=COMPRESSION)
            self._open[name] = (writer, sink, tmp)
        return self._open[name][0]

    def append(self, name: str, data: pa.Table | Mapping) -> None:
        """Add rows to `frames`, `humans` or `points` (checked against the schema, sorted within the chunk)."""
        if name not in self.STREAMED:
            raise SchemaMismatchError(f"append takes one of {self.STREAMED}, not {name!r}")
        table = conform(S.TABLES[name], data)
        if table.num_rows == 0:
            return
        if name == S.HUMANS.name:
            self._tracks.update(table.column(S.TRACK_ID).to_pylist())
        self._writer(name).write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows[name] += table.num_rows

    @property
    def n_tracks(self) -> int:
        return len(self._tracks)

    def commit(self, *, videos: pa.Table | Mapping, n_decode_errors: int | None = None) -> manifest.Commit:
        """Finish the files and make this video's new rows visible in one step (replacing an older run)."""
        videos_t = conform(S.VIDEOS, videos)
        if videos_t.num_rows != 1:
            raise SchemaMismatchError(f"videos must hold exactly one row per video, got {videos_t.num_rows}")
        run = self.run if n_decode_errors is None else dataclasses.replace(self.run, n_decode_errors=n_decode_errors)
        finished = manifest.utc_now()
        runs_t = conform(S.RUNS, {
            S.RUN_ID: [run.run_id], S.MODEL_VERSION: [run.model_version],
            S.CHECKPOINT_SHA256: [run.checkpoint_sha256], S.PRESET: [run.preset],
            S.PARAMS_JSON: [manifest.canonical_json(dict(run.params))], S.PARAMS_HASH: [run.params_hash],
            S.SCHEMA_VERSION_COL: [S.SCHEMA_VERSION], S.STATUS: ["complete"], S.STARTED_AT: [run.started_at],
            S.FINISHED_AT: [finished], S.SECONDS: [(finished - run.started_at).total_seconds()],
            S.N_FRAMES: [self.rows[S.FRAMES.name]], S.N_HUMAN_ROWS: [self.rows[S.HUMANS.name]],
            S.N_TRACKS: [len(self._tracks)], S.N_POINTS: [self.rows[S.POINTS.name]],
            S.N_DECODE_ERRORS: [run.n_decode_errors], S.HOST: [run.host],
        })
        for name in self.STREAMED:
            self._writer(name)  # a table with no rows still gets its (empty) file
        for name, (writer, sink, tmp) in self._open.items():
            writer.close()
            sink.close()
            if self.root.is_local:
                _fs.publish(self.root, tmp, self.files[name])
        self._open.clear()
        for name, table in ((S.VIDEOS.name, videos_t), (S.RUNS.name, runs_t)):
            _write_parquet(self.root, self.files[name], table)
            self.rows[name] = table.num_rows

        previous = manifest.read_commit(self.root, self.video_id)
        commit = manifest.Commit(
            video_id=self.video_id, generation=self.generation, run_id=run.run_id, model_version=run.model_version,
            params_hash=run.params_hash, schema_version=S.SCHEMA_VERSION, files=dict(self.files),
            rows=dict(self.rows), source_uri=run.source_uri, committed_at=finished.isoformat(),
        )
        manifest.write_commit(self.root, commit)  # <- the moment the new rows become visible
        manifest.clear_failure(self.root, run.source_uri)
        if previous is not None and previous.generation != self.generation:
            current = manifest.read_commit(self.root, self.video_id)  # another writer may have committed since
            keep = set(current.files.values()) if current else set()
            for rel in previous.files.values():
                if rel not in keep:
                    _fs.delete(self.root, rel)
        self.committed = commit
        return commit

    def abort(self) -> None:
        """Drop everything written so far (nothing was visible)."""
        for writer, sink, tmp in self._open.values():
            try:
                writer.close()
                sink.close()
            except (OSError, pa.ArrowException):
                pass
            _fs.delete(self.root, tmp)
        self._open.clear()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed is None:
            self.abort()


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
    """Write every table of one video at once and make them visible together (atomically replacing an older run)."""
    with VideoWriter(root, video_id, run) as writer:
        writer.append(S.FRAMES.name, frames)
        writer.append(S.HUMANS.name, humans)
        writer.append(S.POINTS.name, points)
        return writer.commit(videos=videos)


def read_table(root: _fs.Root, name: str, video_ids: Iterable[str] | None = None) -> pa.Table:
    """The live rows of a per-video table (all videos, or the given ones), with `video_id` as a column."""
    table = S.TABLES[name]
    if not table.per_video:
        raise StorageError(f"{name!r} is not a per-video table; use read_failures")
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
