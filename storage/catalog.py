"""DuckDB over the dataset: one read-only connection with a view per table and macros for motion queries.

`open_catalog(root)` snapshots the commit log (so a query sees each video complete, never half-written) and defines:

* views ``videos``, ``runs``, ``failures``, ``frames``, ``humans``, ``points`` (``video_id`` first; filters on it
  prune to that video's files);
* scalar macros ``cam_center(cam_to_world)``, ``dist3(a, b)``;
* table macros ``track_steps()``, ``track_speed()``, ``trajectory_length()``, ``person_distances()``,
  ``camera_path()`` (see `MACROS` for their columns).

User SQL (`Catalog.query`) must be read-only: only SELECT-type statements run, the connection cannot touch files
outside the dataset root, and its configuration is locked.
"""

from __future__ import annotations

import os
import re

import duckdb
import pyarrow as pa

from storage import fs as _fs
from storage import manifest
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

READ_ONLY_STATEMENTS = {"SELECT"}
_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\s+", re.IGNORECASE)


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Catalog:
    """A read-only DuckDB view of one dataset root, as it was when the catalog was opened."""

    def __init__(self, root: _fs.Root, *, threads: int | None = None):
        manifest.check_dataset(root)
        self.root = root
        self.commits = manifest.list_commits(root)
        self.con = duckdb.connect(":memory:", config={"threads": threads or min(os.cpu_count() or 1, 4)})
        for table in S.TABLES.values():
            self._create_view(table)
        self.con.execute(MACROS)
        if root.is_local:
            self.con.execute(f"SET allowed_directories=[{_sql_str(root.base + '/')}]")
        self.con.execute("SET enable_external_access=false")
        self.con.execute("SET lock_configuration=true")

    # --------------------------------------------------------------------------------------------- views
    def _files(self, table: S.Table) -> list[str]:
        if table.per_video:
            return [c.files[table.name] for c in self.commits if table.name in c.files]
        return [i.path[len(self.root.base) + 1:] for i in _fs.list_files(self.root, table.name)
                if i.base_name.endswith(".parquet")]

    def _create_view(self, table: S.Table) -> None:
        files = self._files(table)
        order = f"{S.VIDEO_ID}, * EXCLUDE ({S.VIDEO_ID})" if table.per_video else "*"
        if not files:
            self.con.register(f"_empty_{table.name}", table.full_schema.empty_table())
            source = f"_empty_{table.name}"
            order = "*"
        elif self.root.is_local:
            paths = ", ".join(_sql_str(self.root.path(f)) for f in files)
            hive = f", hive_partitioning=true, hive_types={{'{S.VIDEO_ID}': VARCHAR}}" if table.per_video else ""
            source = f"read_parquet([{paths}]{hive})"
        else:
            import pyarrow.dataset as ds

            part = ds.partitioning(pa.schema([(S.VIDEO_ID, pa.string())]), flavor="hive") if table.per_video else None
            dataset = ds.dataset([self.root.path(f) for f in files], filesystem=self.root.fs, format="parquet",
                                 schema=table.arrow_schema.append(pa.field(S.VIDEO_ID, pa.string()))
                                 if table.per_video else table.arrow_schema,
                                 partitioning=part, partition_base_dir=self.root.path(table.name))
            self.con.register(f"_arrow_{table.name}", dataset)
            source = f"_arrow_{table.name}"
        self.con.execute(f"CREATE VIEW {table.name} AS SELECT {order} FROM {source}")

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
