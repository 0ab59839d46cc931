"""User SQL on the SQL page: one read-only statement, a row limit applied inside DuckDB, a time limit, CSV output.

Every query goes through `storage.catalog.Catalog.query` (the catalog's read-only path: SELECT-type statements
only, no file outside the dataset, configuration locked). On top of that the statement is run as
``SELECT * FROM query($sql) LIMIT n + 1``: DuckDB's ``query()`` table function accepts a single SELECT statement only
and stops reading once the limit is reached, so a ``SELECT * FROM points`` over a large dataset returns its first
rows at once instead of materialising the table. ``EXPLAIN`` (a few lines of plan) runs as it is.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import time

import duckdb
import pyarrow as pa

from storage.errors import QueryError

READ_KINDS = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN"


@dataclasses.dataclass(frozen=True)
class Result:
    """The first rows of a query: `table` holds at most `limit` rows; `truncated` says more rows existed."""

    table: pa.Table
    truncated: bool
    seconds: float
    limit: int


def statement_kind(sql: str) -> str:
    """The kind of the single statement in `sql` (SELECT, EXPLAIN, CREATE, ...); QueryError for none or several.

    Only parses (DuckDB's parser, no connection state); `Catalog.query` checks again before anything runs."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise QueryError(_one_line(err)) from err
    if not statements:
        raise QueryError("the query is empty: write one SELECT statement, or pick a recipe")
    if len(statements) > 1:
        raise QueryError(f"{len(statements)} statements given: run one statement at a time")
    return statements[0].type.name


def run(snapshot, sql: str, *, limit: int, timeout_s: float) -> Result:
    """Run one read-only statement and keep its first `limit` rows (QueryError names what went wrong)."""
    kind = statement_kind(sql)
    if kind not in ("SELECT", "EXPLAIN"):
        raise QueryError(f"only read queries run here ({READ_KINDS}); got a {kind} statement")
    start = time.perf_counter()
    if kind == "EXPLAIN":  # a plan is a few rows; Catalog.query checks what it explains
        table = snapshot.timed(sql, timeout_s=timeout_s)
    else:
        table = snapshot.timed(f"SELECT * FROM query($sql) LIMIT {int(limit) + 1}", {"sql": sql}, timeout_s=timeout_s)
    seconds = time.perf_counter() - start
    return Result(table.slice(0, limit), table.num_rows > limit, seconds, limit)


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else type(err).__name__


# ---------------------------------------------------------------------------------------------------- cells
def _plain(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def cell(value, max_items: int = 4) -> str:
    """A value as the result table shows it: floats to 6 significant digits, long lists shortened."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        inner = ", ".join(cell(v, max_items) for v in value[:max_items])
        return f"[{inner}{', …' if len(value) > max_items else ''}]"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def rows_for_display(table: pa.Table) -> list[list[str]]:
    return [[cell(v) for v in row.values()] for row in table.to_pylist()]


def to_csv(table: pa.Table) -> str:
    """CSV with a header; lists and structs as JSON, null as an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([json.dumps(_plain(v)) if isinstance(v, list | dict) else ("" if v is None else _plain(v))
                         for v in row.values()])
    return out.getvalue()
