"""Keeping a dataset small and fast: delete rows no live run uses, compact files by video, checkpoint, vacuum.

* :func:`vacuum` deletes the rows of replaced runs (once their successor has been committed for `min_age_s`: the
  writers delete them sooner, `storage.deletes`; this catches up what a crashed one left) and of runs that crashed
  before committing (files older than `min_age_s`), then lets Delta delete the files no snapshot references any
  more (older than `min_age_s`, so a reader that opened a snapshot a moment ago keeps its files).
* :func:`compact` rewrites each table sorted by ``video_id`` into large files with small row groups (Delta's
  Z-order on one column), so a per-video query reads a row group or two, then checkpoints and cleans up the log
  and vacuums. Run it after each nightly (the `compact-dataset` flow does).

Visible data never changes: both only remove what the live views (`storage.schema`) already ignore.
"""

from __future__ import annotations

import dataclasses
import math
import time

from storage import dataset
from storage import delta as D
from storage import schema as S
from storage.deletes import ORDER, Succession, delete_runs
from storage.fs import Root

ROW_GROUP_ROWS = 65_536  # rows per row group after compaction: what a per-video query reads at most per file
TARGET_FILE_BYTES = 256 << 20


@dataclasses.dataclass
class MaintenanceReport:
    dead_runs: dict[str, int] = dataclasses.field(default_factory=dict)  # table -> run ids whose rows were deleted
    rows_deleted: dict[str, int] = dataclasses.field(default_factory=dict)
    files_removed: dict[str, int] = dataclasses.field(default_factory=dict)  # by Delta vacuum
    files_before: dict[str, int] = dataclasses.field(default_factory=dict)
    files_after: dict[str, int] = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        return (f"deleted {sum(self.rows_deleted.values())} rows of {len(set().union(*self.dead_runs.values()))} "
                f"dead runs, removed {sum(self.files_removed.values())} unreferenced files"
                if self.dead_runs else f"removed {sum(self.files_removed.values())} unreferenced files")


def _run_file_ages(dt, table: S.Table, now: float) -> dict[str, float]:
    """run id -> age in seconds of the newest live file holding its rows (files of one run: from the stats)."""
    import duckdb

    from storage.catalog import sql_str

    ages: dict[str, float] = {}
    mixed = []
    for f in D.snapshot_files(dt, (S.RUN_ID,)):
        age = now - f.modification_ms / 1000
        if (run := f.single(S.RUN_ID)) is not None:
            ages[run] = min(ages.get(run, math.inf), age)
        else:
            mixed.append((f.path, age))
    if mixed:  # compacted files hold many runs: read their run ids
        by_path = dict(mixed)
        files = [f for f in D.live_files(dt) if any(f.endswith(p) for p in by_path)]
        con = duckdb.connect(":memory:", config={"threads": 1})
        rows = con.sql(f"SELECT DISTINCT {S.RUN_ID}, filename FROM read_parquet([{', '.join(map(sql_str, files))}], "
                       "filename=true)").fetchall()
        con.close()
        for run_id, filename in rows:
            age = next(a for p, a in mixed if filename.endswith(p))
            ages[run_id] = min(ages.get(run_id, math.inf), age)
    return ages


def dead_runs(runs: Succession, table: S.Table, dt, *, min_age_s: float, now: float | None = None) -> list[str]:
    """Run ids whose rows in `table` no reader can need any more: replaced at least `min_age_s` ago, or never
    committed (crashed) with files at least that old."""
    now = time.time() if now is None else now
    dead = []
    for run_id, age in _run_file_ages(dt, table, now).items():
        if run_id in runs.replaced_at:  # replaced: safe once its successor has been live for min_age_s
            if now - runs.replaced_at[run_id] >= min_age_s:
                dead.append(run_id)
        elif run_id not in runs.video_of and age >= min_age_s:  # never committed: files as old as its data commit
            dead.append(run_id)
    return sorted(dead)


def vacuum(root: Root, *, min_age_s: float = 3600.0) -> MaintenanceReport:
    """Delete dead rows and unreferenced files (see the module docstring). Returns what was removed."""
    dataset.check_dataset(root)
    report = MaintenanceReport()
    runs = Succession.read(root)
    for name in ORDER:
        dt = D.open_table(root, S.TABLES[name])
        if dt is None:
            continue
        dead = dead_runs(runs, S.TABLES[name], dt, min_age_s=min_age_s)
        report.dead_runs[name] = set(dead)
        if dead:
            counts = delete_runs(root, S.TABLES[name], {r: runs.video_of.get(r) for r in dead})
            report.rows_deleted[name] = counts.rows_deleted
    for name in S.STORED_TABLES:
        dt = D.open_table(root, S.TABLES[name])
        if dt is not None:
            removed = dt.vacuum(retention_hours=math.ceil(min_age_s / 3600), dry_run=False,
                                enforce_retention_duration=False, full=True)
            report.files_removed[name] = len(removed)
    return report


def compact(root: Root, *, min_age_s: float = 3600.0) -> MaintenanceReport:
    """Vacuum dead rows, rewrite every table sorted by video into large files, checkpoint, clean the log, vacuum."""
    from deltalake import WriterProperties

    dataset.check_dataset(root)
    before = {name: len(dt.file_uris()) for name in S.STORED_TABLES
              if (dt := D.open_table(root, S.TABLES[name])) is not None}
    report = vacuum(root, min_age_s=min_age_s)
    report.files_before = before
    properties = WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS)
    for name in S.STORED_TABLES:
        table = S.TABLES[name]
        if D.open_table(root, table) is None:
            continue
        order = [S.VIDEO_ID] if S.VIDEO_ID in table.column_names and table.kind != "events" else list(table.key)
        D.rewrite(root, table, lambda t, o=order: t.optimize.z_order(o, target_size=TARGET_FILE_BYTES,
                                                                      writer_properties=properties), "compact")
        dt = D.open_table(root, table)
        dt.create_checkpoint()
        dt.cleanup_metadata()
        report.files_removed[name] = report.files_removed.get(name, 0) + len(dt.vacuum(
            retention_hours=math.ceil(min_age_s / 3600), dry_run=False, enforce_retention_duration=False, full=True))
        report.files_after[name] = len(D.open_table(root, table).file_uris())
    return report
