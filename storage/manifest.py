"""The commit log: which files of each video are live, what is done, and what failed.

Protocol (the reason a reader never sees half a video):

1. a writer puts every table file of a video under a fresh *generation* name (invisible to readers);
2. it then replaces the video's commit pointer ``_commits/video_id=<id>.json`` in one atomic step;
3. only then does it delete the previous generation's files.

Readers list the pointers and read exactly the files they name. A crash before step 2 leaves the previous
generation live (its files untouched); the orphans are removed by `vacuum`. Re-writing a video replaces its
pointer, so the dataset never holds two copies of a video's rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterable

from storage import fs as _fs
from storage import schema as S
from storage.errors import DatasetNotFoundError, RootError, SchemaMismatchError


@dataclasses.dataclass(frozen=True)
class Commit:
    """The live state of one video in the dataset."""

    video_id: str
    generation: str
    run_id: str
    model_version: str
    params_hash: str
    schema_version: int
    files: dict[str, str]  # table name -> path relative to the root
    rows: dict[str, int]  # table name -> row count
    source_uri: str
    committed_at: str  # ISO 8601, UTC

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Commit:
        raw = json.loads(data)
        return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_generation() -> str:
    """Sortable, unique generation name: microseconds since the epoch (hex) plus random bits."""
    import uuid

    return f"{time.time_ns() // 1000:014x}-{uuid.uuid4().hex[:6]}"


def params_hash(params: dict) -> str:
    """Stable hash of run parameters (canonical JSON)."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()[:16]


def canonical_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


# ------------------------------------------------------------------------------------------------ dataset marker
def init_dataset(root: _fs.Root) -> None:
    """Create the dataset marker if absent; refuse a root that holds another schema version."""
    if _fs.exists(root, S.DATASET_FILE):
        check_dataset(root)
        return
    marker = {"schema_version": S.SCHEMA_VERSION, "producer": S.PRODUCER, "created_at": utc_now().isoformat()}
    try:
        _fs.write_bytes_atomic(root, S.DATASET_FILE, json.dumps(marker, indent=1).encode())
    except OSError as err:
        raise RootError(f"cannot create a dataset at {root.uri}: {_reason(err)}") from err


def check_dataset(root: _fs.Root) -> dict:
    """The dataset marker, after checking it exists and its schema version is the one this code reads."""
    try:
        marker = json.loads(_fs.read_bytes(root, S.DATASET_FILE))
    except FileNotFoundError as err:
        raise DatasetNotFoundError(
            f"no dataset at {root.uri} (no {S.DATASET_FILE}); write one with `human3r reconstruct VIDEO --out "
            f"{root.uri}` or `human3r synth --root {root.uri}`"
        ) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SchemaMismatchError(f"{root.uri}/{S.DATASET_FILE} is not valid JSON: {err}") from err
    except OSError as err:  # a root that is a file, a folder we may not read, an unreachable bucket
        raise DatasetNotFoundError(f"cannot read the dataset at {root.uri}: {_reason(err)}") from err
    if not isinstance(marker, dict):
        raise SchemaMismatchError(f"{root.uri}/{S.DATASET_FILE} is not a dataset marker (a JSON object)")
    version = marker.get("schema_version")
    if version != S.SCHEMA_VERSION:
        raise SchemaMismatchError(
            f"dataset at {root.uri} has schema version {version}, this code reads version {S.SCHEMA_VERSION}; "
            f"use the release that wrote it, or re-run the reconstruction into a new root"
        )
    return marker


def _reason(err: OSError) -> str:
    return " ".join((err.strerror or str(err)).split()) or type(err).__name__


# ------------------------------------------------------------------------------------------------ commits
def read_commit(root: _fs.Root, video_id: str) -> Commit | None:
    try:
        return Commit.from_json(_fs.read_bytes(root, S.COMMIT_FILE.format(video_id=video_id)))
    except FileNotFoundError:
        return None


def write_commit(root: _fs.Root, commit: Commit) -> None:
    _fs.write_bytes_atomic(root, S.COMMIT_FILE.format(video_id=commit.video_id), commit.to_json())


def list_commits(root: _fs.Root) -> list[Commit]:
    """Every live video's commit, sorted by video id."""
    commits = []
    for info in _fs.list_files(root, S.COMMITS_DIR):
        if info.base_name.endswith(".json") and info.base_name.startswith(f"{S.PARTITION_KEY}="):
            with root.fs.open_input_stream(info.path) as f:
                commits.append(Commit.from_json(f.read()))
    return sorted(commits, key=lambda c: c.video_id)


def is_done(root: _fs.Root, video_id: str, model_version: str, params_hash_: str) -> bool:
    """True if the dataset holds this video made by this model with these parameters, in this schema version."""
    commit = read_commit(root, video_id)
    return (
        commit is not None
        and commit.model_version == model_version
        and commit.params_hash == params_hash_
        and commit.schema_version == S.SCHEMA_VERSION
    )


def pending(root: _fs.Root, video_ids: Iterable[str], model_version: str, params_hash_: str) -> list[str]:
    """The video ids of `video_ids` that are not done (in the given order)."""
    return [v for v in video_ids if not is_done(root, v, model_version, params_hash_)]


# ------------------------------------------------------------------------------------------------ failures
def source_key(source_uri: str) -> str:
    return hashlib.sha256(source_uri.encode()).hexdigest()[:16]


def failure_path(source_uri: str) -> str:
    return S.FAILURE_FILE.format(source_key=source_key(source_uri))


def clear_failure(root: _fs.Root, source_uri: str) -> None:
    _fs.delete(root, failure_path(source_uri))


# ------------------------------------------------------------------------------------------------ housekeeping
def vacuum(root: _fs.Root, *, min_age_s: float = 3600.0) -> list[str]:
    """Delete table files no commit references (left by crashes), older than `min_age_s`. Returns their paths."""
    live = {f for c in list_commits(root) for f in c.files.values()}
    now = time.time()
    removed = []
    for table in S.VIDEO_TABLES:
        for info in _fs.list_files(root, table, recursive=True):
            rel = info.path[len(root.base) + 1:]
            age = now - info.mtime.timestamp() if info.mtime is not None else min_age_s
            if rel not in live and age >= min_age_s:
                _fs.delete(root, rel)
                removed.append(rel)
    return removed
