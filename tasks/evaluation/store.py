"""Evaluation results in the dataset: rows of the ``evaluations`` table (`storage.schema.EVALUATIONS`) in and out.

One evaluation run (one ``run_id``) writes every row of one sequence, all its protocols, in one commit (or every
row of one benchmark average); a retried commit never lands twice (the run id is its Delta transaction id). The
live rows of a key (model, precision, parameters, protocol, benchmark, sequence) are those of its latest run
(`storage.catalog.live_results`), so "what is done" is one read of that view.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterable

import pyarrow as pa

from storage import schema as S
from storage.fs import Root
from storage.writer import write_rows
from tasks.evaluation.identity import EvalIdentity
from tasks.evaluation.scoring import ScoredRow


def _base(identity: EvalIdentity, benchmark: str, protocol: str, sequence: str | None, *, run_id: str,
          evaluated_at: dt.datetime, data_root: str | None, n_frames: int | None = None, seconds: float | None = None,
          n_sequences: int | None = None) -> dict:
    return {
        S.RUN_ID: run_id, S.MODEL_VERSION: identity.model_version, S.CHECKPOINT_SHA256: identity.weights.sha256,
        S.PRESET: identity.weights.preset, S.PRECISION: identity.precision,
        S.PARAMS_JSON: identity.params_json(benchmark), S.PARAMS_HASH: identity.params_hash(benchmark),
        S.PROTOCOL: str(protocol), S.BENCHMARK: benchmark, S.SEQUENCE: sequence, S.N_FRAMES: n_frames,
        S.N_SEQUENCES: n_sequences, S.SECONDS: seconds, S.DATA_ROOT: data_root, S.HOST: socket.gethostname(),
        S.EVALUATED_AT: evaluated_at,
    }


def result_rows(identity: EvalIdentity, benchmark: str, protocol: str, sequence: str | None,
                rows: Iterable[ScoredRow], *, message: str | None = None, **run) -> list[dict]:
    """`rows` of one sequence (or one average: `sequence` None) as ``evaluations`` rows of `identity`; `run`: the
    run's run_id, evaluated_at, data_root and optionally n_frames, seconds, n_sequences."""
    base = _base(identity, benchmark, protocol, sequence, **run)
    return [{**base, S.METRIC: r.metric, S.ALIGNMENT: r.alignment, S.VALUE: float(r.value), S.COUNT: int(r.count),
             S.UNIT: r.unit, S.STATUS: r.status, S.ERROR_TYPE: r.error_type, S.MESSAGE: r.message or message}
            for r in rows]


def failure_rows(identity: EvalIdentity, benchmark: str, protocol: str, sequence: str, err: BaseException,
                 **run) -> list[dict]:
    """The one row of a sequence that could not be evaluated (status ``failed``; the next run tries it again)."""
    message = " ".join(str(err).split()) or type(err).__name__
    return [{**_base(identity, benchmark, protocol, sequence, **run), S.METRIC: None, S.ALIGNMENT: None,
             S.VALUE: None, S.COUNT: None, S.UNIT: None, S.STATUS: "failed", S.ERROR_TYPE: type(err).__name__,
             S.MESSAGE: message[:2000]}]


def write_results(root: Root, rows: list[dict], run_id: str) -> int:
    """Commit `rows` (one evaluation run) in one transaction named by `run_id`; returns the number of rows."""
    if not rows:
        return 0
    columns = {c: [r.get(c) for r in rows] for c in S.EVALUATIONS.column_names}
    return write_rows(root, S.EVALUATIONS.name, columns, txn=f"eval-{run_id}")


def live_results(root: Root, *, model_version: str | None = None, benchmark: str | None = None) -> pa.Table:
    """The live ``evaluations`` rows (every row of the latest run of each key), optionally of one model version
    and benchmark; an empty table when the dataset has none."""
    import pyarrow.compute as pc

    from storage.catalog import live_results as _live
    from storage.dataset import check_dataset
    from storage.errors import DatasetNotFoundError

    try:
        check_dataset(root)
    except DatasetNotFoundError:
        return S.EVALUATIONS.arrow_schema.empty_table()
    table = _live(root, S.EVALUATIONS)
    if model_version is not None:
        table = table.filter(pc.equal(table[S.MODEL_VERSION], model_version))
    if benchmark is not None:
        table = table.filter(pc.equal(table[S.BENCHMARK], benchmark))
    return table


def status_of(table: pa.Table, identity: EvalIdentity, benchmark: str, protocol: str) -> dict[str, str]:
    """{sequence: 'ok' | 'excluded' | 'failed'} of `identity`'s live sequence rows (`live_results`) for one benchmark
    and protocol: a sequence is done unless its live run failed."""
    params_hash = identity.params_hash(benchmark)
    out: dict[str, str] = {}
    for r in table.select([S.MODEL_VERSION, S.PRECISION, S.PARAMS_HASH, S.PROTOCOL, S.BENCHMARK, S.SEQUENCE,
                           S.STATUS]).to_pylist():
        if (r[S.SEQUENCE] is None or r[S.MODEL_VERSION] != identity.model_version or r[S.BENCHMARK] != benchmark
                or r[S.PRECISION] != identity.precision or r[S.PARAMS_HASH] != params_hash
                or r[S.PROTOCOL] != protocol):
            continue
        seen = out.get(r[S.SEQUENCE])
        out[r[S.SEQUENCE]] = "failed" if "failed" in (seen, r[S.STATUS]) else ("ok" if "ok" in (seen, r[S.STATUS])
                                                                              else r[S.STATUS])
    return out


def scored_rows(table: pa.Table, identity: EvalIdentity, benchmark: str, protocol: str
                ) -> dict[str | None, list[ScoredRow]]:
    """{sequence (None = the average): its live rows} of `identity` for one benchmark and protocol, failed rows left
    out."""
    params_hash = identity.params_hash(benchmark)
    out: dict[str | None, list[ScoredRow]] = {}
    for r in table.to_pylist():
        if (r[S.MODEL_VERSION] != identity.model_version or r[S.BENCHMARK] != benchmark
                or r[S.PRECISION] != identity.precision or r[S.PARAMS_HASH] != params_hash
                or r[S.PROTOCOL] != protocol or r[S.STATUS] == "failed"):
            continue
        out.setdefault(r[S.SEQUENCE], []).append(ScoredRow(
            r[S.METRIC], r[S.VALUE], r[S.COUNT], r[S.UNIT], r[S.ALIGNMENT], r[S.STATUS], r[S.ERROR_TYPE],
            r[S.MESSAGE]))
    return out


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
