"""What a dataset root is, and what it holds: the marker with the schema version, run parameters' identity, and the
skip check (which videos are done with which model and parameters).

The marker ``ROOT/_dataset.json`` says which contract the folder follows (schema version, table format); every table
carries the version as a Delta property too (`storage.delta.check_version`). A version-1 dataset (the home-made
layout) is refused with the command that converts it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable

from storage import fs as _fs
from storage import schema as S
from storage.errors import DatasetNotFoundError, RootError, SchemaMismatchError


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def canonical_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def params_hash(params: dict) -> str:
    """Stable hash of run parameters (canonical JSON)."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()[:16]


def _reason(err: OSError) -> str:
    return " ".join((err.strerror or str(err)).split()) or type(err).__name__


# ------------------------------------------------------------------------------------------------ marker
def init_dataset(root: _fs.Root) -> _fs.Root:
    """Create the dataset marker if absent; refuse a root that holds another schema version. Returns the root marked
    `checked`: handed to the writers (or to this function) it is not read again, so a batch of videos reads the
    marker once (a GET on S3), not once per video."""
    if root.checked:
        return root
    try:
        check_dataset(root)
        return dataclasses.replace(root, checked=True)
    except DatasetNotFoundError as err:  # absent (create it), or there but unreadable (say so)
        if not isinstance(err.__cause__, FileNotFoundError) and _fs.exists(root, S.DATASET_FILE):
            raise
    marker = {"schema_version": S.SCHEMA_VERSION, "format": S.FORMAT, "producer": S.PRODUCER,
              "created_at": utc_now().isoformat()}
    try:
        _fs.write_bytes_atomic(root, S.DATASET_FILE, json.dumps(marker, indent=1).encode())
    except OSError as err:
        raise RootError(f"cannot create a dataset at {root.uri}: {_reason(err)}") from err
    return dataclasses.replace(root, checked=True)


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
    if version == 1:
        raise SchemaMismatchError(
            f"the dataset at {root.uri} has schema version 1 (per-video files and commit pointers); convert it "
            f"with `human3r migrate --root {root.uri}` (this release reads version {S.SCHEMA_VERSION})"
        )
    if version != S.SCHEMA_VERSION:
        raise SchemaMismatchError(
            f"dataset at {root.uri} has schema version {version}, this code reads version {S.SCHEMA_VERSION}; "
            f"use the release that wrote it, or re-run the reconstruction into a new root"
        )
    return marker


# ------------------------------------------------------------------------------------------------ done
def done_runs(root: _fs.Root, video_ids: Iterable[str] | None = None) -> dict[str, dict]:
    """video id -> its live run (model_version, params_hash, params_json, run_id, row counts): one read of the runs
    table, read once per batch of videos; with `video_ids`, of those videos only (the files that may hold them: what
    one video's check before writing reads, whatever the size of the archive)."""
    from storage.catalog import live_runs

    columns = [S.VIDEO_ID, S.RUN_ID, S.MODEL_VERSION, S.PARAMS_HASH, S.PARAMS_JSON, S.SCHEMA_VERSION_COL, S.N_FRAMES,
               S.N_HUMAN_ROWS, S.N_POINTS, S.N_TRACKS]
    rows = live_runs(root, None if video_ids is None else list(video_ids), columns).select(columns).to_pylist()
    return {r[S.VIDEO_ID]: r for r in rows}


def is_done(run: dict | None, model_version: str, params_hash_: str) -> bool:
    """True when the live run `run` (a `done_runs` value) was made by this model with these parameters."""
    return (
        run is not None
        and run[S.MODEL_VERSION] == model_version
        and run[S.PARAMS_HASH] == params_hash_
        and run[S.SCHEMA_VERSION_COL] == S.SCHEMA_VERSION
    )


def pending(root: _fs.Root, video_ids: Iterable[str], model_version: str, params_hash_: str) -> list[str]:
    """The video ids of `video_ids` that are not done (in the given order)."""
    done = done_runs(root)
    return [v for v in video_ids if not is_done(done.get(v), model_version, params_hash_)]
