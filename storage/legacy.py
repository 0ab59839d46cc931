"""Schema version 1, the home-made layout, kept only to read old datasets for `human3r migrate`. Nothing writes it
any more (``bench/scale.py`` builds its own copies to compare against).

Version 1 layout::

    ROOT/_dataset.json                                   # {"schema_version": 1, ...}
    ROOT/_commits/video_id=<id>.json                     # which files of a video are live (its commit pointer)
    ROOT/<table>/video_id=<id>/<table>-<generation>.parquet   # videos, runs, frames, humans, points
    ROOT/failures/source=<key>.parquet                   # the latest failure of one source

Its columns are version 2's with these differences: ``video_id`` lives in the path, not in the files; frames, humans
and points have no ``run_id``; vectors are fixed-size lists and colours uint8; videos and runs are separate files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from storage import fs as _fs
from storage import schema as S

VERSION = 1
COMMITS_DIR = "_commits"
COMMIT_FILE = "_commits/video_id={video_id}.json"
TABLE_FILE = "{table}/video_id={video_id}/{table}-{generation}.parquet"
FAILURE_FILE = "failures/source={source_key}.parquet"
VIDEO_TABLES = ("videos", "runs", "frames", "humans", "points")


@dataclasses.dataclass(frozen=True)
class Commit:
    """The live files of one video in a version-1 dataset."""

    video_id: str
    run_id: str
    files: dict[str, str]  # table -> path relative to the root
    rows: dict[str, int]


def is_legacy(root: _fs.Root) -> bool:
    try:
        return json.loads(_fs.read_bytes(root, S.DATASET_FILE)).get("schema_version") == VERSION
    except (FileNotFoundError, ValueError, AttributeError):
        return False


def list_commits(root: _fs.Root) -> list[Commit]:
    """Every video's commit pointer, sorted by video id."""
    commits = []
    for info in _fs.list_files(root, COMMITS_DIR):
        if info.base_name.startswith("video_id=") and info.base_name.endswith(".json"):
            raw = json.loads(_fs.read_bytes(root, info.path[len(root.base) + 1:]))
            commits.append(Commit(raw["video_id"], raw["run_id"], raw["files"], raw["rows"]))
    return sorted(commits, key=lambda c: c.video_id)


def read_video_table(root: _fs.Root, commit: Commit, table: str) -> pa.Table:
    """One video's rows of a table, with ``video_id`` added as a column (as version 1 readers saw them)."""
    with root.fs.open_input_file(root.path(commit.files[table])) as f:
        t = pq.read_table(f)
    return t.add_column(0, S.VIDEO_ID, pa.array([commit.video_id] * t.num_rows, pa.string()))


def read_failures(root: _fs.Root) -> Iterator[pa.Table]:
    for info in _fs.list_files(root, "failures"):
        if info.base_name.endswith(".parquet"):
            with root.fs.open_input_file(info.path) as f:
                yield pq.read_table(f)
