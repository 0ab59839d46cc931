"""The dashboard's view of the dataset: one read-only DuckDB catalog, refreshed when the dataset changes.

`storage.catalog.open_catalog` takes a snapshot when it opens. The dashboard keeps one open and, on a request that
comes at least ``refresh_s`` seconds after the last check, compares the Delta versions the snapshot read with the
tables' current versions (one small log read per table); when any table moved on (a run committed, a failure
recorded, a compaction), it opens a new catalog and closes the old one. So a page is never more than ``refresh_s``
behind, and an idle dataset costs one version check per interval, never a reopen.

A DuckDB connection serves one query at a time: every use of the catalog holds the snapshot's lock, and a page
holds it while it runs its queries, so each page reads one snapshot. User SQL runs under a time limit (the
connection is interrupted when it expires).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pyarrow as pa

from storage import delta
from storage import schema as S
from storage.catalog import Catalog, open_catalog
from storage.errors import QueryError
from storage.fs import Root


class Snapshot:
    """A refreshing read-only catalog over one dataset root (thread-safe: one query at a time)."""

    def __init__(self, root: Root, *, refresh_s: float = 30.0, threads: int | None = None):
        self.root = root
        self.refresh_s = refresh_s
        self._threads = threads
        self._lock = threading.RLock()
        self._catalog: Catalog = open_catalog(root, threads=threads)
        self.opened_at = time.time()  # when the current catalog was opened (epoch seconds)
        self.checked_at = self.opened_at  # when the versions were last compared
        self._optional: dict[str, bool] = {}
        self._depth = 0  # nesting of catalog() blocks in the thread holding the lock

    # ------------------------------------------------------------------------------------------------ refresh
    def current_versions(self) -> dict[str, int | None]:
        """The Delta version of every stored table now (None for a table not created yet)."""
        versions = {}
        for name in S.STORED_TABLES:
            dt = delta.open_table(self.root, S.TABLES[name], version_check=False)
            versions[name] = None if dt is None else dt.version()
        return versions

    def refresh(self, *, force: bool = False) -> bool:
        """Reopen the catalog when a table changed since it was opened (checked at most every ``refresh_s``
        seconds unless `force`). Returns True when it reopened."""
        with self._lock:
            now = time.time()
            if not force and now - self.checked_at < self.refresh_s:
                return False
            self.checked_at = now
            if self.current_versions() == {n: self._catalog.versions.get(n) for n in S.STORED_TABLES}:
                return False
            fresh = open_catalog(self.root, threads=self._threads)
            self._catalog.close()
            self._catalog, self.opened_at, self._optional = fresh, now, {}
            return True

    @contextlib.contextmanager
    def catalog(self) -> Iterator[Catalog]:
        """The current catalog, refreshed if due, with the lock held for the duration of the block. Blocks nest
        (the lock is re-entrant) and only the outermost one refreshes: a page that runs its queries inside one block
        reads one snapshot."""
        with self._lock:
            if self._depth == 0:
                self.refresh()
            self._depth += 1
            try:
                yield self._catalog
            finally:
                self._depth -= 1

    # ------------------------------------------------------------------------------------------------ queries
    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        """Our own read queries (written with `storage.schema` names): rows as dicts."""
        with self.catalog() as cat:
            return cat.query(sql, params).to_pylist()

    def arrow(self, sql: str, params: list | None = None) -> pa.Table:
        """Our own read queries, as an Arrow table (for columns better converted in bulk)."""
        with self.catalog() as cat:
            return cat.query(sql, params)

    def one(self, sql: str, params: list | None = None) -> dict | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def has_view(self, name: str) -> bool:
        """Whether the catalog defines `name` (e.g. a derived table such as ``track_quality`` that may not exist)."""
        with self.catalog() as cat:
            if name not in self._optional:
                found = cat.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?",
                                  [name]).column(0)[0].as_py()
                self._optional[name] = bool(found)
            return self._optional[name]

    def columns(self, name: str) -> list[str]:
        """Column names of a view of the catalog."""
        with self.catalog() as cat:
            return [r["column_name"] for r in cat.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [name]).to_pylist()]

    def timed(self, sql: str, params: list | dict | None = None, *, timeout_s: float) -> pa.Table:
        """Run read-only SQL through `Catalog.query`, interrupting it after `timeout_s` seconds (QueryError)."""
        with self.catalog() as cat:
            fired = threading.Event()

            def interrupt() -> None:
                fired.set()
                cat.con.interrupt()

            timer = threading.Timer(timeout_s, interrupt)
            timer.start()
            try:
                return cat.query(sql, params)
            except QueryError as err:
                if fired.is_set():
                    raise QueryError(f"the query ran longer than the time limit of {timeout_s:g} s and was "
                                     "stopped; add a filter (e.g. WHERE video_id = '...') or a LIMIT") from err
                raise
            finally:
                timer.cancel()

    def close(self) -> None:
        with self._lock:
            self._catalog.close()
