"""`evaluate-model`: a model on one of the paper's benchmarks, sequence by sequence on the Ray actor pool the archive
uses, results into the dataset's `evaluations` table, then the benchmark's averages and the paper's tables.

    prefect deployment run evaluate-model/benchmark --watch -p benchmark=emdb2 -p data=/data/EMDB \\
        -p model='{"checkpoint": "/models/human3r_896L.pth", "body_model": "/models/smplx"}' \\
        -p options='{"smpl_files": "/models/smpl_files", "protocol": "both"}' -p cluster='{"num_actors": 4}'
    python flows/evaluate.py          # locally with the defaults, no server needed

`human3r eval BENCHMARK` does the same work from the command line (in one process, or on the pool with --actors).
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.evaluation.options import EvalOptions
from tasks.evaluation.pipeline import evaluate_sequence_task, plan_benchmark, report_task, write_averages_task
from tasks.evaluation.runner import EvalSummary
from tasks.options import ClusterOptions, ModelOptions
from tasks.reconstruction.actors import actor_pool


@flow(name="evaluate-model", task_runner=ThreadPoolTaskRunner(max_workers=32), log_prints=False)
def evaluate_model(
    benchmark: str = "emdb2",
    data: str = "data/benchmarks/EMDB",
    dataset: str = "data/evaluations",
    model: ModelOptions = ModelOptions(),
    options: EvalOptions = EvalOptions(),
    cluster: ClusterOptions = ClusterOptions(),
    force: bool = False,
) -> EvalSummary:
    """Evaluate a model on `benchmark` read from `data` into the dataset at `dataset`.

    Args:
        benchmark: 3dpw, emdb1, emdb2, rich, tum, tum_<N>, bonn or bonn_<N>.
        data: the benchmark's folder, laid out as its release.
        dataset: dataset root the results go to (the evaluations table; folder or s3://bucket/prefix).
        model: the weights, the SMPL-X body model (human benchmarks) and how the network runs
            (`tasks.options.ModelOptions`).
        options: protocol (reference, corrected or both), SMPL files, max_frames, sequences
            (`tasks.evaluation.options.EvalOptions`).
        cluster: where the model replicas run and how many: one sequence per replica at a time
            (`tasks.options.ClusterOptions`).
        force: evaluate again sequences the dataset already holds for this model.
    """
    plan = plan_benchmark(benchmark, data, dataset, model, options, force)
    results = []
    if plan.pending:
        with actor_pool(model, cluster) as pool:
            futures = evaluate_sequence_task.map(plan.pending, pool=unmapped(pool), dataset=unmapped(dataset),
                                                 force=unmapped(force))
            results = [f.result() for f in futures]
    averages = write_averages_task(plan, dataset)
    return report_task(plan, results, averages, dataset)


if __name__ == "__main__":
    evaluate_model()
