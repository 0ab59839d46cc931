"""The evaluation stages as Prefect tasks: plan (what the dataset lacks), evaluate each sequence on the Ray actor pool,
write the benchmark's averages, report.

Each `@task` wraps a plain function (`tasks.evaluation.runner`) that tests call directly. Exactly-once lives in the
data layer (the ``evaluations`` table, checked at plan time and again by the actor before it computes); Prefect's
cache is not involved (`NO_CACHE`).
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from storage.dataset import init_dataset
from storage.fs import open_root
from tasks.evaluation.benchmarks import benchmark_protocol
from tasks.evaluation.identity import EvalIdentity
from tasks.evaluation.options import EvalOptions
from tasks.evaluation.runner import (
    EvalPlan,
    EvalSummary,
    SequenceOutcome,
    SequenceUnit,
    check_inputs,
    plan_evaluation,
    summarize,
    write_averages,
)
from tasks.options import ModelOptions


@task(name="plan-evaluation", cache_policy=NO_CACHE)
def plan_benchmark(benchmark: str, data: str, dataset: str, model: ModelOptions, options: EvalOptions,
                   force: bool = False) -> EvalPlan:
    bp = benchmark_protocol(benchmark)
    identity = EvalIdentity.planned(model, options.smpl_files if bp.kind == "human" else None,
                                    max_frames=options.max_frames)
    check_inputs(bp, identity, options, model.body_model)
    plan = plan_evaluation(benchmark, data, init_dataset(open_root(dataset)), identity, options, force=force)
    logger = get_run_logger()
    if identity.weights.is_untrained:
        logger.warning("UNTRAINED WEIGHTS (%s): a smoke run, rows are marked with this model_version",
                       identity.model_version)
    logger.info("%s: %d sequence(s), %d to evaluate, %d already evaluated for %s%s", benchmark, len(plan.names),
                len(plan.pending), len(plan.done), identity.describe(),
                f"; {len(plan.missing)} listed but absent from {data}" if plan.missing else "")
    return plan


@task(name="evaluate-sequence", cache_policy=NO_CACHE, task_run_name="evaluate {unit.benchmark} {unit.name}")
def evaluate_sequence_task(unit: SequenceUnit, pool, dataset: str, force: bool = False) -> SequenceOutcome:
    outcome = pool.evaluate(unit, dataset, force=force)
    logger = get_run_logger()
    if outcome.status == "failed":
        logger.warning("%s %s failed: %s: %s", unit.benchmark, unit.name, outcome.error_type, outcome.message)
    else:
        logger.info("%s %s: %s, %d frames in %.1f s", unit.benchmark, unit.name, outcome.status, outcome.frames,
                    outcome.seconds)
    return outcome


@task(name="benchmark-averages", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def write_averages_task(plan: EvalPlan, dataset: str) -> list[str]:
    """The benchmark's average per protocol from the stored rows (idempotent: unchanged averages are not written)."""
    lines = write_averages(init_dataset(open_root(dataset)), plan)
    for line in lines:
        get_run_logger().info(line)
    return lines


@task(name="evaluation-report", cache_policy=NO_CACHE)
def report_task(plan: EvalPlan, outcomes: list[SequenceOutcome], averages: list[str], dataset: str) -> EvalSummary:
    from tasks.evaluation.report import build_report

    summary = summarize(plan, outcomes, averages, dataset)
    create_table_artifact(key="evaluate-report", table=summary.rows,
                          description=f"Per-sequence results of evaluate-model ({plan.benchmark}) into {dataset}")
    create_markdown_artifact(key="evaluate-tables", markdown=f"**{summary.line}**\n\n" + build_report(
        open_root(dataset)))
    get_run_logger().info(summary.line)
    return summary
