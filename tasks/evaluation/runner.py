"""A benchmark evaluation, one sequence at a time: plan what is left, evaluate each sequence (network, metrics,
rows committed at once), then the benchmark's averages.

* :func:`plan_evaluation` loads the benchmark under each protocol asked for (the loaders differ where the reference
  has defects), lists its sequences, and leaves out those the dataset holds for this identity and protocol: a
  killed evaluation resumes where it stopped, a second run evaluates nothing new.
* :func:`evaluate_sequence` is plain Python (the Ray actor and the command both call it): it checks again that the
  sequence is not done, streams its frames through the network once, scores the prediction under every pending
  protocol and commits all the rows in one transaction. A sequence that cannot be evaluated becomes a ``failed``
  row with the reason, and the others go on.
* :func:`write_averages` makes each protocol's benchmark average from the stored rows (`tasks.evaluation.averages`)
  and writes it when it changed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from storage import schema as S
from storage.fs import Root
from tasks.errors import OptionsError
from tasks.evaluation.benchmarks import benchmark_protocol, load_benchmark
from tasks.evaluation.benchmarks.protocol import BenchmarkProtocol
from tasks.evaluation.benchmarks.sequence import Sequence
from tasks.evaluation.identity import EvalIdentity
from tasks.evaluation.options import EvalOptions
from tasks.evaluation.store import failure_rows, live_results, now, result_rows, scored_rows, status_of, write_results

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SequenceUnit:
    """One sequence to evaluate: its ground truth under each pending protocol (the same frames), and the identity."""

    benchmark: str
    name: str
    data_root: str
    sequences: tuple[tuple[str, Sequence], ...]  # (protocol, the loader's sequence under it)
    identity: EvalIdentity
    smpl_files: str | None = None

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.sequences)

    @property
    def n_frames(self) -> int:
        return len(self.sequences[0][1])


@dataclasses.dataclass(frozen=True)
class SequenceOutcome:
    """What happened to one sequence."""

    benchmark: str
    sequence: str
    status: str  # 'ok', 'skipped' (already evaluated) or 'failed'
    protocols: tuple[str, ...] = ()
    frames: int = 0
    seconds: float = 0.0
    error_type: str | None = None
    message: str = ""
    attempts: int = 1
    node_id: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    """A benchmark's sequences: those left to evaluate and those already done."""

    benchmark: str
    data_root: str
    identity: EvalIdentity
    protocols: tuple[str, ...]
    names: tuple[str, ...]  # every sequence evaluated (the filter applied), in the benchmark's order
    pending: tuple[SequenceUnit, ...]
    done: tuple[SequenceOutcome, ...]
    missing: tuple[str, ...] = ()  # sequences of the benchmark's list absent from the data folder


# ------------------------------------------------------------------------------------------------------------------
# Plan
# ------------------------------------------------------------------------------------------------------------------


def check_inputs(bp: BenchmarkProtocol, identity: EvalIdentity, options: EvalOptions, body_model: str | None) -> None:
    """A human benchmark without a body model or SMPL files is a wrong invocation: one error saying what to give."""
    if bp.kind != "human":
        return
    if body_model is None:
        raise OptionsError(f"{bp.name} scores SMPL-X bodies: give the SMPL-X body model with --body-model (or "
                           "$HUMAN3R_BODY_MODEL), SMPLX_NEUTRAL.npz from smpl-x.is.tue.mpg.de")
    if options.smpl_files is None:
        from tasks.evaluation.benchmarks.smpl_files import GET_FILES

        raise OptionsError(f"{bp.name} needs the SMPL files: {GET_FILES}")
    from tasks.evaluation.identity import smpl_file_list

    found = {p.name for p in smpl_file_list(options.smpl_files)}
    need = {"SMPL male model": ("SMPL_MALE.npz", "SMPL_MALE.pkl", "basicmodel_m_lbs_10_207_0_v1.1.0.pkl"),
            "SMPL female model": ("SMPL_FEMALE.npz", "SMPL_FEMALE.pkl", "basicmodel_f_lbs_10_207_0_v1.1.0.pkl"),
            "smplx2smpl matrix": ("smplx2smpl.pkl", "smplx2smpl_sparse.pt"),
            "H36M regressor": ("J_regressor_h36m.npy",),
            "SMPL neutral model": ("SMPL_NEUTRAL.npz", "SMPL_NEUTRAL.pkl",
                                   "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl")}
    absent = [f"{what} ({' or '.join(names)})" for what, names in need.items() if not found & set(names)]
    if absent:
        from tasks.evaluation.benchmarks.errors import ConversionFileError
        from tasks.evaluation.benchmarks.smpl_files import GET_FILES

        raise ConversionFileError(f"{options.smpl_files} lacks {', '.join(absent)}: {GET_FILES}")


def plan_evaluation(benchmark: str, data: str, root: Root, identity: EvalIdentity, options: EvalOptions, *,
                    force: bool = False) -> EvalPlan:
    """What is left to evaluate of `benchmark` (read from `data`) for `identity` under `options.protocols`."""
    loaded = {p: load_benchmark(benchmark, data, protocol=p, **_loader_options(benchmark, options))
              for p in options.protocols}
    names: list[str] = []
    for bench in loaded.values():
        names += [s.name for s in bench.sequences if s.name not in names]
    if options.sequences:
        unknown = sorted(set(options.sequences) - set(names))
        if unknown:
            raise OptionsError(f"--sequence: {', '.join(unknown)} not in {benchmark} under {data}; it has "
                               f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''}")
        names = [n for n in names if n in options.sequences]
    table = live_results(root, model_version=identity.model_version, benchmark=benchmark)
    status = {p: ({} if force else status_of(table, identity, benchmark, p)) for p in options.protocols}
    pending, done = [], []
    for name in names:
        todo = tuple((p, b[name].head(identity.max_frames)) for p, b in loaded.items()
                     if _has(b, name) and status[p].get(name) in (None, "failed"))
        if todo:
            pending.append(SequenceUnit(benchmark, name, str(data), todo, identity, options.smpl_files))
        else:
            done.append(SequenceOutcome(benchmark, name, "skipped", options.protocols,
                                        message=f"already evaluated for {identity.describe()}"))
    missing = tuple(dict.fromkeys(m for b in loaded.values() for m in b.missing))
    return EvalPlan(benchmark, str(data), identity, options.protocols, tuple(names), tuple(pending), tuple(done),
                    missing)


def _loader_options(benchmark: str, options: EvalOptions) -> dict:
    """3DPW without its annotation file: built in memory from the sequence files with the SMPL models' rest pelvis
    (as the reference's prepare_3dpw.py), when the SMPL files are given."""
    if benchmark != "3dpw" or not options.smpl_files:
        return {}
    models: dict = {}

    def pelvis_rest(gender, betas):
        if not models:
            from tasks.evaluation.benchmarks.smpl_files import load_smpl_models

            models.update(load_smpl_models(options.smpl_files))
        return models[gender].rest_pelvis(betas)

    return {"pelvis_rest": pelvis_rest}


def _has(bench, name: str) -> bool:
    return any(s.name == name for s in bench.sequences)


# ------------------------------------------------------------------------------------------------------------------
# One sequence
# ------------------------------------------------------------------------------------------------------------------


def evaluate_sequence(unit: SequenceUnit, root: Root, model, *, body_model=None, bodies=None, force: bool = False,
                      progress: Callable[[int], None] | None = None) -> SequenceOutcome:
    """Evaluate one sequence with `model` (a `Human3R`) and, for human benchmarks, `body_model` (`human3r.body`) and
    `bodies` (`tasks.evaluation.bodies.EvalBodies`); commit its rows. Never raises for a sequence that fails: it
    returns status 'failed' and commits a failed row per pending protocol."""
    from tasks.evaluation.predict import predict_sequence
    from tasks.evaluation.scoring import score

    started = time.perf_counter()
    identity = unit.identity.computed_by(model)  # the precision this network computes in
    bp = benchmark_protocol(unit.benchmark)
    run_id = S.new_run_id()
    protocols = unit.protocols
    try:
        if not force:  # another run may have evaluated it since the plan: check this benchmark's rows again
            table = live_results(root, model_version=identity.model_version, benchmark=unit.benchmark)
            protocols = tuple(p for p in protocols
                              if status_of(table, identity, unit.benchmark, p).get(unit.name) in (None, "failed"))
            if not protocols:
                return SequenceOutcome(unit.benchmark, unit.name, "skipped", unit.protocols,
                                       message="evaluated meanwhile by another run")
        sequences = dict(unit.sequences)
        first = sequences[protocols[0]]
        preds = list(predict_sequence(model, first.images, reset_interval=bp.reset_interval, use_ttt3r=bp.use_ttt3r,
                                      with_depth=bp.kind == "depth", progress=progress))
        rows = []
        at = now()
        for protocol in protocols:
            seq = sequences[protocol]
            if seq.images != first.images:  # the loaders never differ in frames; if they did, score its own frames
                raise OptionsError(f"{unit.name}: the {protocol} loader gives other frames than the {protocols[0]} "
                                   "one; evaluate the protocols separately")
            scored = score(seq, preds, bp, protocol, body_model=body_model, bodies=bodies,
                           working_size=identity.working_size)
            rows += result_rows(identity, unit.benchmark, protocol, unit.name, scored, run_id=run_id,
                                evaluated_at=at, data_root=unit.data_root, n_frames=len(preds),
                                seconds=time.perf_counter() - started)
        write_results(root, rows, run_id)
        return SequenceOutcome(unit.benchmark, unit.name, "ok", protocols, frames=len(preds),
                               seconds=time.perf_counter() - started)
    except Exception as err:  # noqa: BLE001 - a sequence that fails (bad frame, bug, OOM) must not stop the rest
        log.debug("evaluation of %s %s failed", unit.benchmark, unit.name, exc_info=True)
        return record_sequence_failure(unit, root, err, protocols=protocols, seconds=time.perf_counter() - started)


def record_sequence_failure(unit: SequenceUnit, root: Root, err: BaseException, *, protocols=None,
                            seconds: float = 0.0, attempts: int = 1) -> SequenceOutcome:
    """Commit the failed rows of a sequence (one per protocol) and return its outcome. Never raises."""
    protocols = tuple(protocols or unit.protocols)
    run_id = S.new_run_id()
    rows = [r for p in protocols for r in failure_rows(unit.identity, unit.benchmark, p, unit.name, err,
                                                       run_id=run_id, evaluated_at=now(), data_root=unit.data_root,
                                                       seconds=seconds)]
    try:
        write_results(root, rows, run_id)
    except Exception:  # noqa: BLE001 - the outcome still reports the failure
        log.exception("could not record the failure of %s %s", unit.benchmark, unit.name)
    message = " ".join(str(err).split()) or type(err).__name__
    return SequenceOutcome(unit.benchmark, unit.name, "failed", protocols, seconds=seconds,
                           error_type=type(err).__name__, message=message, attempts=attempts)


REPORT_COLUMNS = ("sequence", "status", "protocols", "frames", "seconds", "attempts", "message")


@dataclasses.dataclass(frozen=True)
class EvalSummary:
    """What an evaluation run did: counts, one line, a row per sequence, the averages' lines."""

    counts: dict[str, int]  # ok / skipped / failed
    line: str
    rows: list[dict]
    averages: list[str]

    @property
    def failed(self) -> bool:
        return self.counts["failed"] > 0


def summarize(plan: EvalPlan, outcomes: list[SequenceOutcome], averages: list[str], dataset: str) -> EvalSummary:
    every = [*plan.done, *outcomes]
    counts = {k: sum(o.status == k for o in every) for k in ("ok", "skipped", "failed")}
    line = (f"{plan.benchmark}: {counts['ok']} evaluated, {counts['skipped']} already evaluated, {counts['failed']} "
            f"failed -> {dataset}")
    rows = [{k: (", ".join(v) if isinstance(v, tuple) else v) for k, v in o.to_dict().items() if k in REPORT_COLUMNS}
            for o in every]
    return EvalSummary(counts, line, rows, averages)


# ------------------------------------------------------------------------------------------------------------------
# Averages
# ------------------------------------------------------------------------------------------------------------------


def write_averages(root: Root, plan: EvalPlan) -> list[str]:
    """Each protocol's benchmark average over the evaluated sequences of the plan, from the stored rows, written
    when it differs from the live one. Returns one line per protocol (what the average covers)."""
    from tasks.evaluation.averages import benchmark_average

    bp = benchmark_protocol(plan.benchmark)
    table = live_results(root, model_version=plan.identity.model_version, benchmark=plan.benchmark)
    lines = []
    for protocol in plan.protocols:
        stored = scored_rows(table, plan.identity, plan.benchmark, protocol)
        sequences = {n: stored[n] for n in plan.names if n in stored}
        rows, used = benchmark_average(bp, protocol, sequences) if sequences else ([], 0)
        if not used:
            lines.append(f"{protocol}: no sequence could be scored, no average")
            continue
        note = coverage(plan, sequences, status_of(table, plan.identity, plan.benchmark, protocol), used)
        if _same(stored.get(None, []), rows) and _n_sequences(table, plan, protocol) == used:
            lines.append(f"{protocol}: average over {used} sequence(s) unchanged")
            continue
        run_id = S.new_run_id()
        write_results(root, result_rows(plan.identity, plan.benchmark, protocol, None, rows, run_id=run_id,
                                        evaluated_at=now(), data_root=plan.data_root,
                                        n_frames=_frames_of(table, plan, protocol), n_sequences=used, message=note),
                      run_id)
        lines.append(f"{protocol}: average over {used} sequence(s) written" + (f" ({note})" if note else ""))
    return lines


def coverage(plan: EvalPlan, scored: dict, status: dict[str, str], used: int) -> str | None:
    """Which sequences an average leaves out, in one line (None when it covers the whole benchmark)."""
    def names(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")

    total = len(plan.names) + len(plan.missing)
    if used == total:
        return None
    failed = [n for n in plan.names if status.get(n) == "failed"]
    pending = [n for n in plan.names if n not in scored and n not in failed]
    parts = [f"over {used} of {total} sequences"]
    parts += [f"failed: {names(failed)}"] if failed else []
    parts += [f"not evaluated: {names(pending)}"] if pending else []
    parts += [f"{len(scored) - used} left out by the protocol (status excluded)"] if used < len(scored) else []
    parts += [f"absent from the data: {names(list(plan.missing))}"] if plan.missing else []
    return "; ".join(parts)


def _same(old, new) -> bool:
    """Whether two sets of average rows hold the same numbers."""
    import math

    if len(old) != len(new):
        return False
    by = {(r.metric, r.alignment): r for r in old}
    for r in new:
        o = by.get((r.metric, r.alignment))
        if o is None or o.count != r.count:
            return False
        if not (o.value == r.value or (math.isnan(o.value) and math.isnan(r.value))):
            return False
    return True


def _average_rows(table, plan: EvalPlan, protocol: str) -> list[dict]:
    h = plan.identity.params_hash(plan.benchmark)
    return [r for r in table.select([S.SEQUENCE, S.PROTOCOL, S.PARAMS_HASH, S.PRECISION, S.N_SEQUENCES, S.N_FRAMES,
                                     S.STATUS]).to_pylist()
            if r[S.PROTOCOL] == protocol and r[S.PARAMS_HASH] == h and r[S.PRECISION] == plan.identity.precision]


def _n_sequences(table, plan: EvalPlan, protocol: str) -> int | None:
    return next((r[S.N_SEQUENCES] for r in _average_rows(table, plan, protocol) if r[S.SEQUENCE] is None), None)


def _frames_of(table, plan: EvalPlan, protocol: str) -> int:
    """Frames of the evaluated sequences (each sequence once)."""
    seen = {r[S.SEQUENCE]: r[S.N_FRAMES] or 0 for r in _average_rows(table, plan, protocol)
            if r[S.SEQUENCE] is not None and r[S.STATUS] != "failed"}
    return int(sum(seen.values()))
