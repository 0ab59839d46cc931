"""The Delta Lake tables of a dataset root: open or create them with the contract's properties, commit data files and
small row sets (idempotent, retried under concurrency), and list what a snapshot holds.

Every commit carries an application transaction id (Delta's ``txn`` action, ``human3r:<run or batch>:<table>``): a
retried commit whose first attempt did land is recognised and not applied twice. Appends from many writers never
conflict with each other; delta-rs retries them on the next version, and so do we (with back-off) when it gives up.
On S3 the commits use conditional puts (see `storage.fs.open_root`), so concurrent writers are safe without a lock
service. Everything here is delta-rs (``deltalake``); DuckDB reads the files through `storage.catalog`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
import random
import time
from collections.abc import Iterable

import pyarrow as pa

from storage import schema as S
from storage.errors import SchemaMismatchError, StorageError
from storage.fs import Root

_PIP = "pip install deltalake==1.6.6"
COMMIT_ATTEMPTS = 20  # our retries on top of delta-rs's own (each after a randomised back-off)


def _deltalake():
    try:
        import deltalake
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ImportError(f"the dataset needs delta-rs: {_PIP}") from err
    return deltalake


@dataclasses.dataclass(frozen=True)
class DataFile:
    """A Parquet file written into a table folder, ready to be committed."""

    path: str  # relative to the table folder
    size: int  # bytes
    rows: int
    min_values: dict  # column -> min, for the table's statistics columns
    max_values: dict


def check_version(table: S.Table, dt) -> None:
    """Refuse a table written under another schema version (the property every table of ours carries)."""
    version = dt.metadata().configuration.get(S.SCHEMA_VERSION_PROPERTY)
    if version != str(S.SCHEMA_VERSION):
        raise SchemaMismatchError(
            f"table {table.name!r} at {dt.table_uri} has schema version {version}, this code reads version "
            f"{S.SCHEMA_VERSION}; use the release that wrote it, or `human3r migrate` a version-1 dataset"
        )


def open_table(root: Root, table: S.Table, *, version_check: bool = True):
    """The table as a delta-rs DeltaTable, or None when it does not exist yet."""
    deltalake = _deltalake()
    uri = root.table_uri(table.name)
    try:
        dt = deltalake.DeltaTable(uri, storage_options=root.storage_options)
    except deltalake.exceptions.TableNotFoundError:
        return None
    except OSError as err:
        raise StorageError(f"cannot open table {table.name!r} at {uri}: {err}") from err
    if version_check:
        check_version(table, dt)
    return dt


def ensure_table(root: Root, table: S.Table):
    """Open the table, creating it (schema and properties from the contract) when it does not exist."""
    dt = open_table(root, table)
    if dt is not None:
        return dt
    deltalake = _deltalake()
    try:
        deltalake.DeltaTable.create(root.table_uri(table.name), table.arrow_schema, mode="ignore", name=table.name,
                                    description=table.doc, configuration=table.delta_configuration,
                                    storage_options=root.storage_options, raise_if_key_not_exists=False)
    except deltalake.exceptions.DeltaError as err:  # another writer created it first
        if open_table(root, table) is None:
            raise StorageError(f"cannot create table {table.name!r} at {root.uri}: {err}") from err
    return open_table(root, table)


def _stats(table: S.Table, file: DataFile) -> str:
    stats = [c for c in table.stats if c in file.min_values]
    return json.dumps({
        "numRecords": file.rows,
        "minValues": {c: file.min_values[c] for c in stats},
        "maxValues": {c: file.max_values[c] for c in stats},
        "nullCount": dict.fromkeys(stats, 0),
    })


def _commit(root: Root, table: S.Table, txn: str, attempt_commit) -> bool:
    """Run `attempt_commit(dt, properties)` until it lands; False when `txn` had already landed."""
    deltalake = _deltalake()
    from deltalake.transaction import CommitProperties, Transaction

    app_id = f"human3r:{txn}:{table.name}"
    properties = CommitProperties(app_transactions=[Transaction(app_id, 1)], max_commit_retries=50)
    last: Exception | None = None
    for attempt in range(COMMIT_ATTEMPTS):
        dt = ensure_table(root, table)
        if dt.transaction_version(app_id) is not None:
            return False  # an earlier attempt landed (e.g. the answer was lost): never apply twice
        try:
            attempt_commit(dt, properties)
            return True
        except deltalake.exceptions.CommitFailedError as err:
            last = err
            time.sleep(min(2.0, 0.02 * 2 ** attempt) * random.random())
    raise StorageError(f"could not commit to table {table.name!r} after {COMMIT_ATTEMPTS} attempts: {last}")


def rewrite(root: Root, table: S.Table, operation, what: str):
    """Run `operation(dt)` (a delete, an optimize: a rewrite of existing files) until it lands. It fails when a
    concurrent writer appended meanwhile (Delta's serializable check); the next attempt sees the new data."""
    deltalake = _deltalake()
    last: Exception | None = None
    for attempt in range(COMMIT_ATTEMPTS):
        dt = open_table(root, table)
        try:
            return operation(dt)
        except deltalake.exceptions.CommitFailedError as err:
            last = err
            time.sleep(min(5.0, 0.05 * 2 ** attempt) * random.random())
    raise StorageError(f"could not {what} table {table.name!r}: writers kept committing ({last}); run it again "
                       "when the archive is quieter")


def commit_files(root: Root, table: S.Table, files: Iterable[DataFile], txn: str) -> bool:
    """Append already-written files to the table in one transaction (idempotent per `txn`)."""
    from deltalake.transaction import AddAction

    files = list(files)
    now_ms = int(time.time() * 1000)
    actions = [AddAction(f.path, f.size, {}, now_ms, True, _stats(table, f)) for f in files]

    def attempt(dt, properties):
        dt.create_write_transaction(actions, "append", table.arrow_schema, commit_properties=properties)

    return _commit(root, table, txn, attempt)


def append_rows(root: Root, table: S.Table, rows: pa.Table, txn: str) -> bool:
    """Append a small set of rows (runs, failures, sources) in one transaction (idempotent per `txn`). A column the
    contract added in place (nullable) since the table was created is added to the table's schema by this append
    (Delta schema evolution); older files read it as null."""
    deltalake = _deltalake()

    def attempt(dt, properties):
        deltalake.write_deltalake(dt, rows, mode="append", schema_mode="merge", commit_properties=properties)

    return _commit(root, table, txn, attempt)


@dataclasses.dataclass(frozen=True)
class LiveFile:
    """A data file of a table's snapshot, as its add action describes it."""

    path: str  # relative to the table folder
    size: int  # bytes
    rows: int | None  # row count (None when the file carries no statistics)
    modification_ms: int  # when it was written (the writer's clock), ms since the epoch
    min_values: dict  # statistics column -> min (None when the file carries no statistics for it)
    max_values: dict

    def single(self, column: str):
        """The only value `column` takes in this file, when the statistics say so (min == max), else None."""
        lo = self.min_values.get(column)
        return lo if lo is not None and lo == self.max_values.get(column) else None


def snapshot_files(dt, columns: Iterable[str] = (S.VIDEO_ID, S.RUN_ID)) -> list[LiveFile]:
    """Every live file of the snapshot with its size, time and min/max statistics of `columns`."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    names, n = set(actions.column_names), actions.num_rows

    def stat(kind: str, column: str) -> list:
        key = f"{kind}.{column}"
        return actions.column(key).to_pylist() if key in names else [None] * n

    columns = list(columns)
    lo = {c: stat("min", c) for c in columns}
    hi = {c: stat("max", c) for c in columns}
    rows = actions.column("num_records").to_pylist() if "num_records" in names else [None] * n
    return [LiveFile(path, size, rows[i], mtime, {c: lo[c][i] for c in columns}, {c: hi[c][i] for c in columns})
            for i, (path, size, mtime) in enumerate(zip(actions.column("path").to_pylist(),
                                                         actions.column("size_bytes").to_pylist(),
                                                         actions.column("modification_time").to_pylist(),
                                                         strict=True))]


def commit_changes(dt, table: S.Table, added: Iterable[DataFile], removed: Iterable[LiveFile], properties) -> None:
    """Replace files in one transaction: `removed` leave the snapshot and `added` (already written into the table
    folder) join it. delta-rs checks it against concurrent commits: another removal of one of the same files fails
    it (CommitFailedError); concurrent appends do not."""
    from deltalake.transaction import AddAction, RemoveAction

    now_ms = int(time.time() * 1000)
    actions = [RemoveAction(f.path, True, now_ms, f.size) for f in removed]
    actions += [AddAction(f.path, f.size, {}, now_ms, True, _stats(table, f)) for f in added]
    dt.create_write_transaction(actions, "append", table.arrow_schema, commit_properties=properties)


def live_files(dt) -> list[str]:
    """The data files of the table's current snapshot, as URIs (paths for local tables)."""
    return list(dt.file_uris())


def read_table(root: Root, table: S.Table, columns: list[str] | None = None, *,
               video_ids: Iterable[str] | None = None) -> pa.Table:
    """The whole stored table (every row, live or not) as Arrow; an empty table when it does not exist. With
    `video_ids`, only their rows, and only the files whose ``video_id`` statistics (min/max in the Delta log) may
    hold one of them are opened."""
    dt = open_table(root, table)
    if dt is None:
        schema = table.arrow_schema
        return schema.empty_table() if columns is None else pa.schema([schema.field(c) for c in columns]).empty_table()
    if video_ids is None:
        return pa.table(dt.to_pyarrow_table(columns=columns))
    import pyarrow.dataset as pds

    data = dt.to_pyarrow_dataset()
    ids = sorted(set(video_ids))
    if not ids:
        return data.head(0, columns=columns)
    # one equality per id: pyarrow skips a file when its stats (the fragment's partition expression) exclude them all
    where = functools.reduce(operator.or_, (pds.field(S.VIDEO_ID) == v for v in ids))
    return data.to_table(columns=columns, filter=where)
