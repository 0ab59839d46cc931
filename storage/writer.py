"""Writing the dataset, and reading it back in the same shapes: `write_video` / `read_table`, `write_failure` /
`read_failures`, `write_sources` / `read_sources`.

A run streams its rows into one Parquet file per table (one row group per appended chunk, sorted, zstd), straight
into the table's folder under a name no Delta snapshot lists; `VideoWriter.commit` then commits the files of
``frames``, ``humans`` and ``points`` (one transaction each) and finally appends the run's row to ``runs``, which is
what makes them live (`storage.schema` has the rules). A crash before that leaves the previous run live and only
unreferenced files or unreferenced rows behind (`human3r vacuum` removes them). Commits are idempotent per run id, so
a retried commit never duplicates rows; many writers can commit at once. `commit_runs` commits many finished runs
at once (bulk loads: the synthetic datasets, `human3r migrate`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import uuid
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage import dataset
from storage import delta as D
from storage import schema as S
from storage.errors import SchemaMismatchError, StorageError
from storage.fs import Root

COMPRESSION = "zstd"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What the caller knows about a run; the writer adds the counts, timings and schema version."""

    model_version: str  # 'human3r-<preset>-<sha256[:16]>' or 'untrained-<preset>-seed<n>' (see schema.RUNS)
    preset: str
    params: Mapping  # every parameter of the run (JSON-serialisable)
    started_at: dt.datetime
    source_uri: str
    run_id: str = dataclasses.field(default_factory=S.new_run_id)
    checkpoint_sha256: str | None = None
    n_decode_errors: int = 0
    host: str | None = dataclasses.field(default_factory=socket.gethostname)

    @property
    def params_hash(self) -> str:
        return dataset.params_hash(dict(self.params))


# ------------------------------------------------------------------------------------------------ validation
def conform(table: S.Table, data: pa.Table | Mapping, *, fill: Mapping | None = None) -> pa.Table:
    """`data` (plus constant columns `fill`) as an Arrow table with exactly `table`'s schema, sorted by its sort
    columns, or one SchemaMismatchError listing every problem."""
    got = dict(data) if isinstance(data, Mapping) else {k: data.column(k) for k in data.column_names}
    n = _num_rows(got)
    for name, value in (fill or {}).items():
        got[name] = pa.array([value] * n, table.arrow_schema.field(name).type)
    target = table.arrow_schema
    missing, unexpected = sorted(set(target.names) - set(got)), sorted(set(got) - set(target.names))
    problems = [f"{what} columns {cols}" for what, cols in (("missing", missing), ("unexpected", unexpected)) if cols]
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


def _num_rows(columns: Mapping) -> int:
    for value in columns.values():
        return len(value)
    return 0


def _to_arrow(value, type_: pa.DataType) -> pa.Array:
    """A column as Arrow; numpy (N, k) / (N, J, k) arrays go to (nested) lists without Python objects."""
    if isinstance(value, pa.Array | pa.ChunkedArray):
        return value.cast(type_)
    if isinstance(value, np.ndarray) and value.ndim >= 2 and pa.types.is_list(type_):
        n, k = value.shape[0], value.shape[1]
        inner = value.reshape(n * k, *value.shape[2:]) if value.ndim > 2 else value.reshape(-1)
        values = _to_arrow(np.ascontiguousarray(inner), type_.value_type) if value.ndim > 2 else pa.array(
            np.ascontiguousarray(inner, dtype=type_.value_type.to_pandas_dtype()), type=type_.value_type)
        return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), values)
    return pa.array(value, type=type_)


# ------------------------------------------------------------------------------------------------ one run
@dataclasses.dataclass
class FinishedRun:
    """A run whose files are written but not committed: what `commit_runs` makes live."""

    files: dict[str, D.DataFile]  # data table -> its file (tables without rows have none)
    runs_row: pa.Table  # one row of `runs`
    run_id: str
    rows: dict[str, int]


class VideoWriter:
    """Streams one run's rows into one file per table, then makes them live together with `commit`.

    Append as many chunks as you like (memory stays bounded by the chunk size); each chunk becomes a row group.
    Leaving the ``with`` block without `commit` (an exception, a crash) leaves the dataset as it was.

        with VideoWriter(root, video_id, run) as w:
            w.append("frames", chunk)        # any of frames / humans / points, any number of times
            w.commit(videos=row)             # the video's facts; the runs row and counts are filled in here
    """

    STREAMED = S.DATA_TABLES

    def __init__(self, root: Root, video_id: str, run: RunInfo):
        dataset.init_dataset(root)
        self.root, self.video_id, self.run = root, video_id, run
        self.rows = dict.fromkeys(self.STREAMED, 0)
        self._tracks: set[int] = set()
        self._frames: tuple[int, int] | None = None
        self._open: dict[str, tuple[pq.ParquetWriter, object, str]] = {}  # table -> (writer, sink, path in table)
        self.committed: FinishedRun | None = None

    def _writer(self, name: str) -> pq.ParquetWriter:
        if name not in self._open:
            rel = S.DATA_FILE.format(run_id=self.run.run_id, table=name)
            if self.root.is_local:
                self.root.local_path(name).mkdir(parents=True, exist_ok=True)
            sink = self.root.fs.open_output_stream(self.root.path(f"{name}/{rel}"))
            writer = pq.ParquetWriter(sink, S.TABLES[name].arrow_schema, compression=COMPRESSION)
            self._open[name] = (writer, sink, rel)
        return self._open[name][0]

    def append(self, name: str, data: pa.Table | Mapping) -> None:
        """Add rows to `frames`, `humans` or `points` (checked against the schema, sorted within the chunk)."""
        if name not in self.STREAMED:
            raise SchemaMismatchError(f"append takes one of {self.STREAMED}, not {name!r}")
        table = conform(S.TABLES[name], data, fill={S.VIDEO_ID: self.video_id, S.RUN_ID: self.run.run_id})
        if table.num_rows == 0:
            return
        if name == S.HUMANS.name:
            self._tracks.update(table.column(S.TRACK_ID).to_pylist())
        self._writer(name).write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows[name] += table.num_rows

    @property
    def n_tracks(self) -> int:
        return len(self._tracks)

    def finish(self, *, videos: pa.Table | Mapping, n_decode_errors: int | None = None,
               runs_extra: Mapping | None = None) -> FinishedRun:
        """Close the files and build the runs row; nothing is visible yet (see `commit_runs`). `runs_extra`: values
        of the runs row's optional columns (a live segment's session_id, segment_index, ...); those not given are
        null."""
        video = conform(S.VIDEOS, videos)
        if video.num_rows != 1 or video.column(S.VIDEO_ID)[0].as_py() != self.video_id:
            raise SchemaMismatchError(f"videos must hold exactly one row, for video {self.video_id}")
        run = self.run if n_decode_errors is None else dataclasses.replace(self.run, n_decode_errors=n_decode_errors)
        files = {}
        for name, (writer, sink, rel) in self._open.items():
            writer.close()
            sink.close()
            size = self.root.fs.get_file_info(self.root.path(f"{name}/{rel}")).size
            ids = {S.VIDEO_ID: self.video_id, S.RUN_ID: run.run_id}
            files[name] = D.DataFile(rel, size, self.rows[name], ids, ids)
        self._open.clear()
        finished = dataset.utc_now()
        row = {c: video.column(c)[0].as_py() for c in video.column_names} | {
            S.RUN_ID: run.run_id, S.MODEL_VERSION: run.model_version, S.CHECKPOINT_SHA256: run.checkpoint_sha256,
            S.PRESET: run.preset, S.PARAMS_JSON: dataset.canonical_json(dict(run.params)),
            S.PARAMS_HASH: run.params_hash, S.SCHEMA_VERSION_COL: S.SCHEMA_VERSION, S.STATUS: "complete",
            S.STARTED_AT: run.started_at, S.FINISHED_AT: finished,
            S.SECONDS: (finished - run.started_at).total_seconds(), S.N_FRAMES: self.rows[S.FRAMES.name],
            S.N_HUMAN_ROWS: self.rows[S.HUMANS.name], S.N_TRACKS: len(self._tracks),
            S.N_POINTS: self.rows[S.POINTS.name], S.N_DECODE_ERRORS: run.n_decode_errors, S.HOST: run.host,
        }
        optional = {c.name: None for c in S.RUNS.columns if c.nullable and c.name not in row}
        row = row | optional | dict(runs_extra or {})
        runs_row = conform(S.RUNS, {k: [v] for k, v in row.items()})
        return FinishedRun(files, runs_row, run.run_id, dict(self.rows))

    def commit(self, *, videos: pa.Table | Mapping, n_decode_errors: int | None = None,
               runs_extra: Mapping | None = None) -> FinishedRun:
        """Finish and make this run's rows live in one step (replacing the video's earlier run)."""
        finished = self.finish(videos=videos, n_decode_errors=n_decode_errors, runs_extra=runs_extra)
        commit_runs(self.root, [finished], txn=finished.run_id)
        self.committed = finished
        return finished

    def abort(self) -> None:
        """Drop everything written so far (nothing was visible)."""
        for name, (writer, sink, rel) in self._open.items():
            try:
                writer.close()
                sink.close()
            except (OSError, pa.ArrowException):
                pass
            try:
                self.root.fs.delete_file(self.root.path(f"{name}/{rel}"))
            except OSError:
                pass
        self._open.clear()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed is None:
            self.abort()


def commit_runs(root: Root, finished: list[FinishedRun], *, txn: str | None = None) -> None:
    """Make finished runs live: their data files first (one transaction per table), then their runs rows (one
    transaction). `txn` names the batch; committing the same `txn` again changes nothing."""
    txn = txn or uuid.uuid4().hex
    for name in S.DATA_TABLES:
        files = [f.files[name] for f in finished if name in f.files]
        if files:
            D.commit_files(root, S.TABLES[name], files, txn)
    D.append_rows(root, S.RUNS, pa.concat_tables([f.runs_row for f in finished]), txn)


def write_video(root: Root, video_id: str, *, run: RunInfo, videos, frames, humans, points) -> FinishedRun:
    """Write every table of one video at once and make them live together (replacing an older run)."""
    with VideoWriter(root, video_id, run) as writer:
        writer.append(S.FRAMES.name, frames)
        writer.append(S.HUMANS.name, humans)
        writer.append(S.POINTS.name, points)
        return writer.commit(videos=videos)


# ------------------------------------------------------------------------------------------------ failures, sources
def write_failure(root: Root, *, source_uri: str, stage: str, error: BaseException | str, run_id: str | None = None,
                  video_id: str | None = None, error_type: str | None = None) -> None:
    """Record a failure of a source (the latest one counts until a run of the same source succeeds)."""
    dataset.init_dataset(root)
    message = " ".join(str(error).split()) or type(error).__name__
    row = {
        S.SOURCE_URI: [source_uri], S.VIDEO_ID: [video_id], S.STAGE: [stage],
        S.ERROR_TYPE: [error_type or (type(error).__name__ if isinstance(error, BaseException) else "Error")],
        S.MESSAGE: [message[:2000]], S.RUN_ID: [run_id], S.FAILED_AT: [dataset.utc_now()],
    }
    D.append_rows(root, S.FAILURES, conform(S.FAILURES, row), uuid.uuid4().hex)


def write_rows(root: Root, name: str, rows: pa.Table | Mapping, *, txn: str | None = None) -> int:
    """Append rows to a table that is not written per run (sources, derived tables) in one transaction; `txn`
    makes a retried call land once. Returns the number of rows."""
    table = conform(S.TABLES[name], rows)
    if table.num_rows:
        dataset.init_dataset(root)
        D.append_rows(root, S.TABLES[name], table, txn or uuid.uuid4().hex)
    return table.num_rows


def write_sources(root: Root, rows: pa.Table | Mapping) -> None:
    """Record what discovery saw (one transaction; the latest row of a source counts)."""
    write_rows(root, S.SOURCES.name, rows)


def read_table(root: Root, name: str, video_ids: Iterable[str] | None = None) -> pa.Table:
    """The live rows of a table or view (all videos, or the given ones)."""
    from storage.catalog import open_catalog

    if name not in S.TABLES:
        raise StorageError(f"no table {name!r}; tables: {', '.join(S.TABLES)}")
    where, params = "", None
    if video_ids is not None:
        params = list(video_ids)
        where = f" WHERE {S.VIDEO_ID} IN ({', '.join('?' * len(params))})" if params else " WHERE false"
    order = ", ".join(S.TABLES[name].sort_by or (S.TABLES[name].column_names[0],))
    with open_catalog(root) as cat:
        return cat.query(f"SELECT * FROM {name}{where} ORDER BY {order}", params)


def read_failures(root: Root) -> pa.Table:
    return read_table(root, S.FAILURES.name)


def read_sources(root: Root) -> pa.Table:
    return read_table(root, S.SOURCES.name)
