"""DuckDB over the dataset: one read-only connection with the live views of every table, and macros for motion queries.

`open_catalog(root)` takes a snapshot: it opens ``runs`` first and then the other Delta tables (the read order that
never shows a half-written video, see `storage.schema`), hands DuckDB the files of each snapshot, and defines:

* ``<table>_all``: every stored row of ``runs``, ``failures``, ``sources``, ``frames``, ``humans``, ``points``;
* the live views ``runs``, ``videos``, ``frames``, ``humans``, ``points``, ``failures``, ``sources``, the derived
  tables, ``evaluations``, ``live_status`` and ``sessions`` (the rules of `storage.schema`, written once in
  :data:`LIVE_VIEWS`); filters on ``video_id`` reach the Parquet scans, which skip row groups by their statistics;
* scalar macros ``cam_center(cam_to_world)``, ``dist3(a, b)``; table macros ``track_steps()``, ``track_speed()``,
  ``trajectory_length()``, ``person_distances()``, ``camera_path()`` (see `MACROS` for their columns).

Local tables are read with DuckDB's Parquet reader; S3 tables through pyarrow datasets (DuckDB's httpfs and delta
extensions cannot be installed offline). When DuckDB's ``delta`` extension is installed, it reads the tables
instead (``delta_scan``, with file skipping from the Delta statistics).

User SQL (`Catalog.query`) must be read-only: only SELECT-type statements run, the connection cannot touch files
outside the dataset root, and its configuration is locked.
"""

from __future__ import annotations

import os
import re
import threading

import duckdb
import pyarrow as pa

from storage import dataset, delta
from storage import fs as _fs
from storage import schema as S
from storage.errors import QueryError

MACROS = f"""
-- camera centre (world frame, metres) from a flattened row-major cam_to_world
CREATE MACRO cam_center(c2w) AS [c2w[4], c2w[8], c2w[12]];
-- Euclidean distance between two 3-vectors (lists)
CREATE MACRO dist3(a, b) AS sqrt((a[1] - b[1])^2 + (a[2] - b[2])^2 + (a[3] - b[3])^2);
-- per person and frame: head-joint displacement since the previous observation of the same track
CREATE MACRO track_steps() AS TABLE
    SELECT {S.VIDEO_ID}, {S.TRACK_ID}, {S.FRAME_IDX}, {S.TIMESTAMP_S}, {S.HEAD_WORLD_M},
           dist3({S.HEAD_WORLD_M}, lag({S.HEAD_WORLD_M}) OVER w) AS step_m,
           {S.TIMESTAMP_S} - lag({S.TIMESTAMP_S}) OVER w AS dt_s
    FROM humans
    WINDOW w AS (PARTITION BY {S.VIDEO_ID}, {S.TRACK_ID} ORDER BY {S.FRAME_IDX});
-- per track: frames seen, time span, path length and mean / peak speed of the head joint (m/s)
CREATE MACRO track_speed() AS TABLE
    SELECT {S.VIDEO_ID}, {S.TRACK_ID}, count(*) AS n_frames,
           max({S.TIMESTAMP_S}) - min({S.TIMESTAMP_S}) AS duration_s,
           coalesce(sum(step_m), 0) AS length_m,
           sum(step_m) / nullif(sum(dt_s), 0) AS mean_speed_mps,
           max(step_m / nullif(dt_s, 0)) AS max_speed_mps
    FROM track_steps() GROUP BY ALL;
-- per track: length of the head-joint trajectory (m)
CREATE MACRO trajectory_length() AS TABLE
    SELECT {S.VIDEO_ID}, {S.TRACK_ID}, coalesce(sum(step_m), 0) AS length_m FROM track_steps() GROUP BY ALL;
-- every pair of people seen in the same frame, with the distance between their heads (m)
CREATE MACRO person_distances() AS TABLE
    SELECT a.{S.VIDEO_ID}, a.{S.FRAME_IDX}, a.{S.TIMESTAMP_S}, a.{S.TRACK_ID} AS track_a, b.{S.TRACK_ID} AS track_b,
           dist3(a.{S.HEAD_WORLD_M}, b.{S.HEAD_WORLD_M}) AS distance_m
    FROM humans a JOIN humans b ON a.{S.VIDEO_ID} = b.{S.VIDEO_ID} AND a.{S.FRAME_IDX} = b.{S.FRAME_IDX}
    WHERE a.{S.TRACK_ID} < b.{S.TRACK_ID};
-- the camera trajectory: centre per frame (world, m)
CREATE MACRO camera_path() AS TABLE
    SELECT {S.VIDEO_ID}, {S.FRAME_IDX}, {S.TIMESTAMP_S}, cam_center({S.CAM_TO_WORLD}) AS center_m FROM frames;
"""

def _latest(table: str, key: str, order: str, where: str = "") -> str:
    return (f"SELECT * EXCLUDE (_rank) FROM (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY {order}) "
            f"AS _rank FROM {table}_all{where}) WHERE _rank = 1")


_LIVE_ORDER = f"{S.FINISHED_AT} DESC, {S.RUN_ID} DESC"  # a video's live run is the first run in this order
_IN_LIVE_RUNS = f" WHERE {S.RUN_ID} IN (SELECT {S.RUN_ID} FROM runs)"
_DATA_VIEWS = "\n".join(
    f"CREATE VIEW {t} AS SELECT * FROM {t}_all{_IN_LIVE_RUNS};" for t in S.DATA_TABLES
) + "\n" + "\n".join(  # derived tables: the latest row per key among those of live runs
    f"CREATE VIEW {t.name} AS {_latest(t.name, ', '.join(t.key), f'{t.latest_by} DESC', _IN_LIVE_RUNS)};"
    for t in S.TABLES.values() if t.kind == "derived"
)
_RESULTS_VIEWS = {  # results tables: every row of the latest run of a key (a run's rows share latest_by and run_id)
    t.name: (f"SELECT * EXCLUDE (_rank) FROM (SELECT *, dense_rank() OVER (PARTITION BY {', '.join(t.key)} ORDER BY "
             f"{t.latest_by} DESC, {S.RUN_ID} DESC) AS _rank FROM {t.name}_all) WHERE _rank = 1")
    for t in S.TABLES.values() if t.kind == "results"
}
_RUNS_VIEW = _latest("runs", S.VIDEO_ID, _LIVE_ORDER)
_SOURCES_VIEW = _latest("sources", S.SOURCE_URI, f"{S.PROBED_AT} DESC")
_LIVE_STATUS_VIEW = _latest(S.LIVE_STATUS.name, S.CAMERA, f"{S.UPDATED_AT} DESC")
_FIRST = f"arg_min({{}}, {S.SEGMENT_INDEX})"  # a session's value of its first committed segment
_SESSIONS_VIEW = f"""SELECT {S.SESSION_ID}, {_FIRST.format(S.CAMERA)} AS {S.CAMERA},
        {_FIRST.format(S.SOURCE_URI)} AS {S.SOURCE_URI}, {_FIRST.format(S.MODEL_VERSION)} AS {S.MODEL_VERSION},
        count(*) AS {S.N_SEGMENTS}, min({S.SEGMENT_INDEX}) AS {S.FIRST_SEGMENT},
        max({S.SEGMENT_INDEX}) AS {S.LAST_SEGMENT},
        max({S.SEGMENT_INDEX}) - min({S.SEGMENT_INDEX}) + 1 - count(*) AS {S.MISSING_SEGMENTS},
        min({S.STARTED_AT}) AS {S.STARTED_AT}, max({S.FINISHED_AT}) AS {S.LAST_COMMITTED_AT},
        sum({S.DURATION_S}) AS {S.STREAM_S}, sum({S.N_FRAMES})::BIGINT AS {S.N_FRAMES},
        sum({S.N_FRAMES_DROPPED})::BIGINT AS {S.N_FRAMES_DROPPED}, sum({S.N_HUMAN_ROWS})::BIGINT AS {S.N_HUMAN_ROWS},
        max({S.GAP_BEFORE_S}) FILTER (WHERE {S.SEGMENT_INDEX} = 0) AS {S.GAP_BEFORE_S},
        count(*) FILTER (WHERE {S.SEGMENT_INDEX} > 0 AND {S.GAP_BEFORE_S} IS NOT NULL) AS {S.N_GAPS},
        coalesce(sum({S.GAP_BEFORE_S}) FILTER (WHERE {S.SEGMENT_INDEX} > 0), 0) AS {S.GAP_S},
        list({S.VIDEO_ID} ORDER BY {S.SEGMENT_INDEX}) AS {S.VIDEO_IDS}
    FROM runs WHERE {S.SESSION_ID} IS NOT NULL GROUP BY {S.SESSION_ID}"""
LIVE_VIEWS = f"""
-- the live run of a video: its latest committed run
CREATE VIEW runs AS {_RUNS_VIEW};
-- videos: the video columns of the live runs
CREATE VIEW videos AS SELECT {", ".join(S.VIDEOS.column_names)} FROM runs;
-- rows of frames, humans, points count when their run is live
{_DATA_VIEWS}
-- the latest failure of a source, unless a run of that source finished after it, or a probe of it succeeded after
-- a probe failure
CREATE VIEW failures AS SELECT * FROM ({_latest("failures", S.SOURCE_URI, f"{S.FAILED_AT} DESC")}) f
    WHERE NOT EXISTS (SELECT 1 FROM runs_all r WHERE r.{S.SOURCE_URI} = f.{S.SOURCE_URI}
                      AND r.{S.FINISHED_AT} > f.{S.FAILED_AT})
      AND NOT (f.{S.STAGE} = 'probe' AND EXISTS (
          SELECT 1 FROM sources_all s WHERE s.{S.SOURCE_URI} = f.{S.SOURCE_URI} AND s.{S.PROBE_ERROR} IS NULL
                                        AND s.{S.PROBED_AT} > f.{S.FAILED_AT}));
-- what discovery last saw of each source
CREATE VIEW sources AS {_SOURCES_VIEW};
-- the health of each live camera: its latest row
CREATE VIEW {S.LIVE_STATUS.name} AS {_LIVE_STATUS_VIEW};
-- live sessions, put back together from their segments (the live runs of each session_id)
CREATE VIEW {S.SESSIONS.name} AS {_SESSIONS_VIEW};
-- results (evaluations): the rows of the latest run of each key
""" + "\n".join(f"CREATE VIEW {name} AS {sql};" for name, sql in _RESULTS_VIEWS.items()) + "\n"

READ_ONLY_STATEMENTS = {"SELECT"}
_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\s+", re.IGNORECASE)
_READ_ORDER = ("runs", *(n for n in S.STORED_TABLES if n != "runs"))  # runs first: see storage.schema


def sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _delta_extension(con) -> bool:
    """True when DuckDB's delta extension loads (never downloaded: it must already be installed)."""
    try:
        con.execute("SET autoinstall_known_extensions=false")
        con.execute("LOAD delta")
        return True
    except duckdb.Error:
        return False


class Catalog:
    """A read-only DuckDB view of one dataset root, as it was when the catalog was opened."""

    def __init__(self, root: _fs.Root, *, threads: int | None = None, use_delta_extension: bool = True):
        dataset.check_dataset(root)
        self.root = root
        self.con = duckdb.connect(":memory:", config={"threads": threads or min(os.cpu_count() or 1, 4)})
        self.con.execute("SET enable_progress_bar=false")  # DuckDB's own bar would print on our stdout
        self.uses_delta_extension = use_delta_extension and root.is_local and _delta_extension(self.con)
        self.versions: dict[str, int | None] = {}  # table -> the Delta version the snapshot read
        for name in _READ_ORDER:
            self._register(S.TABLES[name])
        self.con.execute(LIVE_VIEWS)
        self.con.execute(MACROS)
        if root.is_local:
            self.con.execute(f"SET allowed_directories=[{sql_str(root.base + '/')}]")
        self.con.execute("SET enable_external_access=false")
        self.con.execute("SET lock_configuration=true")

    # --------------------------------------------------------------------------------------------- views
    def _register(self, table: S.Table) -> None:
        dt = delta.open_table(self.root, table)
        self.versions[table.name] = None if dt is None else dt.version()
        files = [] if dt is None else delta.live_files(dt)
        view = f"{table.name}_all"
        if not files:
            self.con.register(f"_empty_{table.name}", table.arrow_schema.empty_table())
            source = f"_empty_{table.name}"
        elif self.uses_delta_extension:
            source = f"delta_scan({sql_str(self.root.table_uri(table.name))})"
        elif self.root.is_local:  # union_by_name: files older than a column added in place read it as null
            source = f"read_parquet([{', '.join(sql_str(f) for f in files)}], union_by_name=true)"
        else:
            import pyarrow.dataset as ds

            paths = [f.removeprefix("s3://") for f in files]
            self.con.register(f"_arrow_{table.name}",
                              ds.dataset(paths, filesystem=self.root.fs, format="parquet", schema=table.arrow_schema))
            source = f"_arrow_{table.name}"
        source = _with_added_columns(self.con, table, dt, source) if files else source
        self.con.execute(f"CREATE VIEW {view} AS SELECT {', '.join(table.column_names)} FROM {source}")

    # --------------------------------------------------------------------------------------------- queries
    def query(self, sql: str, params: list | dict | None = None) -> pa.Table:
        """Run read-only SQL; returns an Arrow table. Bad SQL or a write raises `QueryError` with one line."""
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as err:
            raise QueryError(_one_line(err)) from err
        if not statements:
            raise QueryError("empty query")
        for st in statements:
            kind = self._kind(st)
            if kind not in READ_ONLY_STATEMENTS:
                raise QueryError(f"only read queries (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN) are allowed; got {kind}")
        try:
            for st in statements[:-1]:
                self.con.sql(st.query, params=params)
            rel = self.con.sql(statements[-1].query, params=params)
            return rel.to_arrow_table() if rel is not None else pa.table({})
        except duckdb.Error as err:
            raise QueryError(_one_line(err)) from err

    def _kind(self, statement) -> str:
        """Statement type; EXPLAIN [ANALYZE] counts as what it explains (ANALYZE runs it)."""
        kind = statement.type.name
        if kind == "EXPLAIN":
            inner = _EXPLAIN.sub("", statement.query, count=1)
            inner_statements = self.con.extract_statements(inner)
            kinds = {st.type.name for st in inner_statements}
            return kinds.pop() if len(kinds) == 1 else "EXPLAIN"
        return kind

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else type(err).__name__


def open_catalog(root: str | os.PathLike | _fs.Root, *, threads: int | None = None) -> Catalog:
    """Open a read-only catalog on a dataset root (local path or s3:// URI)."""
    return Catalog(root if isinstance(root, _fs.Root) else _fs.open_root(root), threads=threads)


def _with_added_columns(con, table: S.Table, dt, source: str) -> str:
    """`source`, or, when the Delta table predates columns the contract added in place (nullable: no append has
    evolved its schema yet), `source` with those columns as nulls of their contract type."""
    if set(table.column_names) <= set(dt.schema().to_arrow().names):
        return source
    con.register(f"_contract_{table.name}", table.arrow_schema.empty_table())
    return f"(SELECT * FROM {source} UNION ALL BY NAME SELECT * FROM _contract_{table.name})"


_SHARED: list = []  # one in-memory DuckDB per process for the one-table views (a connection costs ~0.1 s to open)
_SHARED_LOCK = threading.Lock()


def _cursor():
    """A fresh cursor (its own connection state, thread-safe to use alone) on the process's shared in-memory DuckDB."""
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(duckdb.connect(":memory:", config={"threads": 1}))
        return _SHARED[0].cursor()


def _one_table_view(root: _fs.Root, table: S.Table, view: str, rows: pa.Table | None = None) -> pa.Table:
    """`view` (SQL over ``<table>_all``) computed from one stored table alone: `rows` when given (a filtered read,
    of the table's columns or some of them), else every file of the table's snapshot."""
    con = _cursor()
    try:
        files = []
        if rows is None:
            dt = delta.open_table(root, table)
            files = [] if dt is None else delta.live_files(dt)
        if files and root.is_local:
            source = f"read_parquet([{', '.join(sql_str(f) for f in files)}], union_by_name=true)"
            source = _with_added_columns(con, table, dt, source)
        else:
            if rows is None:
                rows = delta.read_table(root, table) if files else table.arrow_schema.empty_table()
            con.register("_rows", rows)
            source = "_rows"
        columns = table.column_names if rows is None else rows.column_names
        stored = f"SELECT {', '.join(columns)} FROM {source}"
        return con.sql(f"WITH {table.name}_all AS ({stored}) {view}").to_arrow_table()
    finally:
        con.close()


def live_runs(root: _fs.Root, video_ids: list[str] | None = None, columns: list[str] | None = None) -> pa.Table:
    """The live run of every video (the ``runs`` view), read from the runs table alone; with `video_ids`, of those
    videos only, reading only the files whose statistics may hold them, and only `columns` of them (the rule's
    columns are added): a cost that does not grow with the archive."""
    if video_ids is None:
        return _one_table_view(root, S.RUNS, _RUNS_VIEW)
    if columns is not None:
        columns = list(dict.fromkeys([S.VIDEO_ID, S.RUN_ID, S.FINISHED_AT, *columns]))
    return _one_table_view(root, S.RUNS, _RUNS_VIEW, delta.read_table(root, S.RUNS, columns, video_ids=video_ids))


def live_results(root: _fs.Root, table: S.Table = S.EVALUATIONS) -> pa.Table:
    """The live rows of a results table (every row of the latest run of each key, `storage.schema` rule 7), read
    from that table alone."""
    return _one_table_view(root, table, _RESULTS_VIEWS[table.name])


def latest_sources(root: _fs.Root) -> pa.Table:
    """What discovery last saw of each source (the ``sources`` view), read from the sources table alone."""
    return _one_table_view(root, S.SOURCES, _SOURCES_VIEW)


def run_succession(root: _fs.Root) -> pa.Table:
    """Every committed run with the moment it stopped being live: ``video_id, run_id, finished_at, replaced_at``,
    where ``replaced_at`` is the ``finished_at`` of the next run of the same video in the live-run order (null for
    the live run). What deletes the rows of replaced runs reads (`storage.deletes`)."""
    ascending = _LIVE_ORDER.replace(" DESC", "")
    return _one_table_view(root, S.RUNS, f"SELECT {S.VIDEO_ID}, {S.RUN_ID}, {S.FINISHED_AT}, lead({S.FINISHED_AT}) "
                                         f"OVER (PARTITION BY {S.VIDEO_ID} ORDER BY {ascending}) AS replaced_at "
                                         "FROM runs_all")
