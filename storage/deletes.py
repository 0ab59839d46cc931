"""Deleting rows by run from the Delta tables, so that a plain Delta reader sees the live rows and only those.

A re-run commits its rows, then its ``runs`` row, which makes it live (`storage.schema`); the rows of the run it
replaced stay in the files until they are deleted here:

* :func:`delete_replaced` runs after a batch of runs has committed (`human3r reconstruct` at its end and every 100
  videos, the flow `reconstruct-archive` as its last task; `human3r vacuum` catches up too). It deletes
  the rows of every run that a later *committed* run of the same video replaced at least
  :data:`storage.schema.REPLACED_GRACE_S` ago, in one transaction per table. Runs that are live or in flight (rows
  committed, ``runs`` row not yet) are never named, so their rows are never touched. Each table remembers how far
  it has been cleaned (a Delta application transaction, :data:`WATERMARK_APP`), so a call looks only at the videos
  re-run since then, less :data:`COMMIT_LAG_S` for commits that land late: one after a crash catches up what the
  crashed one left, and one with nothing new reads the runs table, the logs and at most the row groups of the
  videos re-run in that last hour.
* :func:`delete_runs` is the delete itself, which `storage.maintenance.vacuum` uses too: a file whose statistics
  say it holds one run is dropped whole (no rewrite); a file holding many runs (after compaction) is read by row
  group, the row groups that may hold those runs' videos first, and written again without their rows only when it
  holds some; the removals and the new files are one commit. delta-rs's own DELETE would put every run id in the
  log's commit info and compare each against every file's statistics (seconds per commit at 20,000 runs).

Deletion vectors would make a rewrite a small bitmap per file; delta-rs 1.6.6 does not write them (its DELETE
rewrites the file even with the feature on) and refuses to read tables that have them (`bench/deletes.py`).
"""

from __future__ import annotations

import bisect
import dataclasses
import time
import uuid
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage import delta as D
from storage import schema as S
from storage.fs import Root

WATERMARK_APP = "human3r:replaced-rows-deleted"  # Delta txn app id: its version is the watermark, ms since epoch
COMMIT_LAG_S = 3600.0  # a run's runs row lands within this long of its finished_at (commit retries, clock skew)
COMPRESSION = "zstd"
DICTIONARY = [S.VIDEO_ID, S.RUN_ID]  # dictionary-encode the keys only: 3x faster to write and smaller than all columns
ORDER = (*(t.name for t in S.TABLES.values() if t.kind == "derived"), *reversed(S.DATA_TABLES))  # delete order


@dataclasses.dataclass
class DeleteCounts:
    """What a delete did to one table."""

    runs: set[str] = dataclasses.field(default_factory=set)  # run ids that had rows in the table
    files_dropped: int = 0  # files that held only deleted rows: removed from the snapshot, nothing written
    files_rewritten: int = 0  # files written again without the deleted rows
    rows_deleted: int = 0
    rows_copied: int = 0  # rows of rewritten files that stayed
    bytes_removed: int = 0  # size of the files that left the snapshot
    bytes_written: int = 0  # size of the files written in their place


@dataclasses.dataclass
class DeleteReport:
    """What `delete_replaced` did: per table counts, the replaced runs it checked and those it left for later."""

    tables: dict[str, DeleteCounts] = dataclasses.field(default_factory=dict)
    checked: int = 0  # replaced runs looked for in the tables
    too_recent: int = 0  # replaced runs younger than the grace period (left to the next call)
    seconds: float = 0.0

    @property
    def runs(self) -> set[str]:
        return set().union(*(c.runs for c in self.tables.values()))

    def total(self, field: str) -> int:
        return sum(getattr(c, field) for c in self.tables.values())

    def line(self) -> str:
        if not self.runs:
            return "no rows of replaced runs to delete"
        return (f"deleted the rows of {len(self.runs)} replaced run(s): {self.total('rows_deleted'):,} rows, "
                f"{self.total('files_dropped')} file(s) dropped, {self.total('files_rewritten')} rewritten "
                f"({self.total('bytes_written') / 1e6:.1f} MB written) in {self.seconds:.1f} s")


@dataclasses.dataclass(frozen=True)
class Succession:
    """The runs table read once: each committed run's video, when it was replaced, and each video's live run."""

    video_of: dict[str, str]  # committed run id -> video id
    replaced_at: dict[str, float]  # replaced run id -> finished_at of the run after it (seconds since the epoch)
    live: dict[str, tuple[str, float]]  # video id -> (live run id, its finished_at)

    @classmethod
    def read(cls, root: Root) -> Succession:
        from storage.catalog import run_succession

        video_of, replaced_at, live = {}, {}, {}
        for r in run_succession(root).to_pylist():
            video_of[r[S.RUN_ID]] = r[S.VIDEO_ID]
            if r["replaced_at"] is None:
                live[r[S.VIDEO_ID]] = (r[S.RUN_ID], r[S.FINISHED_AT].timestamp())
            else:
                replaced_at[r[S.RUN_ID]] = r["replaced_at"].timestamp()
        return cls(video_of, replaced_at, live)


# ------------------------------------------------------------------------------------------------ the delete
def _schema_columns(pf: pq.ParquetFile) -> dict[str, int]:
    """Top-level column name -> index of its leaf in the row-group metadata (flat columns only)."""
    return {pf.metadata.schema.column(i).path: i for i in range(pf.metadata.num_columns)}


def _row_groups_to_read(pf: pq.ParquetFile, videos: list[str] | None) -> list[int]:
    """Row groups that may hold one of `videos` (sorted; None: every row group), by their video_id statistics."""
    groups = range(pf.metadata.num_row_groups)
    column = _schema_columns(pf).get(S.VIDEO_ID)
    if videos is None or column is None:
        return list(groups)
    keep = []
    for g in groups:
        stats = pf.metadata.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max:
            keep.append(g)
        elif bisect.bisect_right(videos, stats.max) > bisect.bisect_left(videos, stats.min):
            keep.append(g)
    return keep


def _candidates(f: D.LiveFile, runs: Mapping[str, str | None], videos: list[str] | None) -> bool:
    """Whether the file's statistics allow it to hold a row of one of `runs`."""
    vlo, vhi = f.min_values.get(S.VIDEO_ID), f.max_values.get(S.VIDEO_ID)
    rlo, rhi = f.min_values.get(S.RUN_ID), f.max_values.get(S.RUN_ID)
    if rlo is not None and rhi is not None and not any(rlo <= r <= rhi for r in runs):
        return False
    if videos is not None and vlo is not None and vhi is not None:
        return bisect.bisect_right(videos, vhi) > bisect.bisect_left(videos, vlo)
    return True


def _rewrite(root: Root, table: S.Table, f: D.LiveFile, doomed: pa.Array, videos: list[str] | None,
             counts: DeleteCounts) -> D.DataFile | None | bool:
    """Write `f` again without the rows of the runs `doomed`. Returns the new file, None when no row stays, or
    False when the file holds none of those rows (nothing written)."""
    path = root.path(f"{table.name}/{f.path}")
    with root.fs.open_input_file(path) as source:
        pf = pq.ParquetFile(source)
        groups = _row_groups_to_read(pf, videos)
        if not groups:
            return False
        held = pc.unique(pf.read_row_groups(groups, columns=[S.RUN_ID]).column(S.RUN_ID))
        hit = pc.is_in(held, value_set=doomed)
        if not pc.any(hit).as_py():
            return False
        counts.runs.update(pc.filter(held, hit).to_pylist())
        if len(groups) == pf.metadata.num_row_groups and pc.all(hit).as_py():  # every row goes: drop, never rewrite
            counts.rows_deleted += pf.metadata.num_rows
            return None
        rel = S.REWRITTEN_FILE.format(token=uuid.uuid4().hex)
        target = root.path(f"{table.name}/{rel}")
        kept = 0
        lo: dict[str, object] = {}
        hi: dict[str, object] = {}
        with root.fs.open_output_stream(target) as sink, pq.ParquetWriter(
                sink, pf.schema_arrow, compression=COMPRESSION, use_dictionary=DICTIONARY) as writer:
            for g in range(pf.metadata.num_row_groups):
                rows = pf.read_row_group(g)
                rows = rows.filter(pc.invert(pc.is_in(rows.column(S.RUN_ID), value_set=doomed)))
                counts.rows_deleted += pf.metadata.row_group(g).num_rows - rows.num_rows
                if not rows.num_rows:
                    continue
                writer.write_table(rows, row_group_size=rows.num_rows)  # the source's row groups, minus the rows
                kept += rows.num_rows
                for c in table.stats:
                    mm = pc.min_max(rows.column(c)).as_py()
                    lo[c] = mm["min"] if c not in lo else min(lo[c], mm["min"])
                    hi[c] = mm["max"] if c not in hi else max(hi[c], mm["max"])
    if not kept:
        root.fs.delete_file(target)
        return None
    counts.rows_copied += kept
    return D.DataFile(rel, root.fs.get_file_info(target).size, kept, lo, hi)


def _delete_in_snapshot(root: Root, table: S.Table, dt, runs: Mapping[str, str | None],
                        watermark_ms: int | None) -> DeleteCounts:
    """One attempt: plan against the snapshot `dt`, write the new files, commit (or raise CommitFailedError after
    removing what it wrote)."""
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import CommitProperties, Transaction

    counts = DeleteCounts()
    known = set(runs.values())
    videos = None if None in known else sorted(known)  # row groups are skipped by video when every video is known
    doomed = pa.array(sorted(runs), pa.string())
    dropped: list[D.LiveFile] = []
    replaced: list[D.LiveFile] = []
    added: list[D.DataFile] = []
    try:
        for f in D.snapshot_files(dt):
            single = f.single(S.RUN_ID)
            if single is not None:  # a file of one run (as the writer leaves it): dropped whole, never read
                if single in runs:
                    dropped.append(f)
                    counts.runs.add(single)
                continue
            if not runs or not _candidates(f, runs, videos):
                continue
            new = _rewrite(root, table, f, doomed, videos, counts)
            if new is False:
                continue
            replaced.append(f)
            if new is not None:
                added.append(new)
        counts.rows_deleted += sum(f.rows or 0 for f in dropped)
        counts.files_dropped = len(dropped) + len(replaced) - len(added)  # rewritten files with no row left count
        counts.files_rewritten = len(added)
        counts.bytes_removed = sum(f.size for f in (*dropped, *replaced))
        counts.bytes_written = sum(f.size for f in added)
        current = dt.transaction_version(WATERMARK_APP)
        advance = watermark_ms is not None and (current is None or watermark_ms > current)
        if not dropped and not replaced and not advance:
            return counts
        properties = CommitProperties(
            custom_metadata={"human3r.operation": "delete rows by run", "human3r.runs": len(counts.runs)},
            app_transactions=[Transaction(WATERMARK_APP, watermark_ms)] if advance else None,
            max_commit_retries=50)
        D.commit_changes(dt, table, added, (*dropped, *replaced), properties)
        return counts
    except CommitFailedError:
        for f in added:  # not committed: nothing references them
            root.fs.delete_file(root.path(f"{table.name}/{f.path}"))
        raise


def delete_runs(root: Root, table: S.Table, runs: Mapping[str, str | None], *,
                watermark_ms: int | None = None) -> DeleteCounts:
    """Delete every row of `table` whose run is in `runs` (run id -> its video id, or None when unknown), in one
    transaction, retried against concurrent commits. `watermark_ms` is recorded with it (see the module doc)."""
    def attempt(dt):
        return DeleteCounts() if dt is None else _delete_in_snapshot(root, table, dt, runs, watermark_ms)

    return D.rewrite(root, table, attempt, "delete rows from")


# ------------------------------------------------------------------------------------------------ replaced runs
def delete_replaced(root: Root, *, grace_s: float | None = None, wait: bool = False,
                    now: float | None = None) -> DeleteReport:
    """Delete the rows of the runs that later committed runs of their videos replaced at least `grace_s` ago
    (default :data:`storage.schema.REPLACED_GRACE_S`), from every table that holds rows by run. With `wait`,
    first wait until the most recent replacement is that old, so that nothing is left for later."""
    grace = S.REPLACED_GRACE_S if grace_s is None else grace_s
    started = time.perf_counter()
    now = time.time() if now is None else now
    succession = Succession.read(root)
    young = [at for at in succession.replaced_at.values() if at > now - grace]
    if wait and young:
        time.sleep(max(young) + grace - now)
        return delete_replaced(root, grace_s=grace, wait=False)
    report = DeleteReport(too_recent=len(young))
    due = {r: at for r, at in succession.replaced_at.items() if at <= now - grace}
    for name in ORDER if due else ():
        table = S.TABLES[name]

        def attempt(dt, table=table):
            if dt is None:
                return DeleteCounts()
            mark = dt.transaction_version(WATERMARK_APP)  # the videos re-run since then are all that can be dirty
            since = None if mark is None else mark / 1000
            runs = {r: succession.video_of[r] for r in due
                    if since is None or succession.live[succession.video_of[r]][1] > since}
            report.checked = max(report.checked, len(runs))
            return _delete_in_snapshot(root, table, dt, runs, int((now - COMMIT_LAG_S) * 1000))

        report.tables[name] = D.rewrite(root, table, attempt, "delete replaced rows from")
    report.seconds = time.perf_counter() - started
    return report
