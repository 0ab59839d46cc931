"""`human3r migrate`: convert a schema-version-1 dataset (home-made layout) into version 2 (Delta Lake tables).

Every live video of the old dataset becomes one committed run (its old run id, timestamps and counts kept; the
video's facts join the runs row), its rows tagged with that run id; the latest failure of each source is kept.
Replaced generations and crashed writes that version 1 still held on disk are not carried over.

In place (a local folder): the new tables are built beside the old files, the old layout is moved into
``ROOT/_schema1/`` (nothing is deleted; remove it when you are satisfied), the tables are moved in, and the
version-2 marker is written last, so an interrupted migration leaves a version-1 dataset that can be migrated
again. With ``out``, the old dataset is left as it is and the new one is written there (any root, S3 included).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable

import pyarrow as pa

from storage import dataset, legacy
from storage import fs as _fs
from storage import schema as S
from storage.errors import RootError, SchemaMismatchError
from storage.writer import RunInfo, VideoWriter, commit_runs, conform

BACKUP_DIR = "_schema1"
STAGING_DIR = "_schema2_staging"
BATCH = 200  # videos per commit


@dataclasses.dataclass(frozen=True)
class MigrationReport:
    videos: int
    rows: dict[str, int]
    failures: int
    backup: str | None  # where the version-1 files went (in place), else None


def _runs_row(video: pa.Table, run: pa.Table) -> pa.Table:
    row = {**{c: video.column(c)[0].as_py() for c in video.column_names},
           **{c: run.column(c)[0].as_py() for c in run.column_names}}
    row[S.SCHEMA_VERSION_COL] = S.SCHEMA_VERSION
    return conform(S.RUNS, {c.name: [row.get(c.name) if c.nullable else row[c.name]] for c in S.RUNS.columns})


def _convert(old: _fs.Root, new: _fs.Root, progress: Callable[[int], None] | None) -> tuple[int, dict, int]:
    dataset.init_dataset(new)
    commits = legacy.list_commits(old)
    rows = dict.fromkeys(S.DATA_TABLES, 0)
    pending = []
    for i, commit in enumerate(commits):
        video = legacy.read_video_table(old, commit, "videos")
        run = legacy.read_video_table(old, commit, "runs")
        runs_row = _runs_row(video, run)
        info = RunInfo(model_version="", preset="", params={}, started_at=runs_row.column(S.STARTED_AT)[0].as_py(),
                       source_uri="", run_id=commit.run_id)
        with VideoWriter(new, commit.video_id, info) as writer:
            for name in S.DATA_TABLES:
                table = legacy.read_video_table(old, commit, name)
                writer.append(name, table.drop_columns([S.VIDEO_ID]))
                rows[name] += table.num_rows
            finished = writer.finish(videos=video.select(S.VIDEOS.column_names))
        pending.append(dataclasses.replace(finished, runs_row=runs_row))
        if len(pending) >= BATCH or i == len(commits) - 1:
            commit_runs(new, pending)
            pending = []
        if progress is not None:
            progress(i + 1)
    failures = [conform(S.FAILURES, t.select(S.FAILURES.column_names)) for t in legacy.read_failures(old)]
    if failures:
        from storage import delta

        delta.append_rows(new, S.FAILURES, pa.concat_tables(failures), "migrate-failures")
    return len(commits), rows, sum(t.num_rows for t in failures)


def migrate(root: _fs.Root, out: _fs.Root | None = None, *,
            progress: Callable[[int], None] | None = None) -> MigrationReport:
    """Convert the version-1 dataset at `root` (in place, or into `out`). See the module docstring."""
    if not legacy.is_legacy(root):  # (an interrupted in-place migration still has its version-1 marker)
        marker = dataset.check_dataset(root)  # a clear error when there is no dataset at all
        raise SchemaMismatchError(f"{root.uri} already has schema version {marker['schema_version']}; "
                                  "nothing to migrate")
    if out is not None:
        videos, rows, failures = _convert(root, out, progress)
        return MigrationReport(videos, rows, failures, None)
    if not root.is_local:
        raise RootError(f"migrating {root.uri} in place needs a local folder; give --out for a new root (S3 works "
                        "there)")
    base = root.local_path()
    backup = base / BACKUP_DIR
    staging = _fs.open_root(base / STAGING_DIR)
    shutil.rmtree(staging.local_path(), ignore_errors=True)  # an interrupted earlier attempt
    moved = (backup / legacy.COMMITS_DIR).exists() and not (base / legacy.COMMITS_DIR).exists()
    videos, rows, failures = _convert(_fs.open_root(backup) if moved else root, staging, progress)
    backup.mkdir(exist_ok=True)
    for name in (*legacy.VIDEO_TABLES, legacy.COMMITS_DIR, "failures"):
        if (base / name).exists():
            os.replace(base / name, backup / name)
    shutil.copy2(base / S.DATASET_FILE, backup / S.DATASET_FILE)
    for name in S.STORED_TABLES:
        if (staging.local_path(name)).exists():
            os.replace(staging.local_path(name), base / name)
    marker = json.loads((staging.local_path(S.DATASET_FILE)).read_text())
    _fs.write_bytes_atomic(root, S.DATASET_FILE, json.dumps(marker, indent=1).encode())  # the switch, last
    shutil.rmtree(staging.local_path(), ignore_errors=True)
    return MigrationReport(videos, rows, failures, str(backup))
