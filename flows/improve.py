"""`improve-model`: the users' loop in one flow. Score the archive's tracks, select them by SQL over track_quality,
build pseudo-labels, fine-tune the base model on them, then run base and tuned side by side (the chosen benchmarks
into the evaluations table, the same videos into one comparison dataset per model), compare them, and write a report
that says which is better, by how much, where (``<out>/report.md``, also returned and kept as an artifact).

    prefect deployment run improve-model/improve --watch -p where="jitter_mps3 < 100" \\
        -p benchmarks='{"emdb2": "/data/EMDB", "tum": "/data/TUM"}' -p model='{"checkpoint": "/models/896L.pth"}'
    python flows/improve.py          # locally with the defaults (data/archive -> data/improve), no server needed

Re-running is cheap where the data layer says so: scored runs are not scored again, benchmark sequences and
comparison videos already done for a model are skipped; the label build is replaced and the model trained again.
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.evaluation.options import EvalOptions
from tasks.evaluation.pipeline import evaluate_sequence_task, plan_benchmark, report_task, write_averages_task
from tasks.labels.stages import score_tracks
from tasks.loop.options import ImproveOptions
from tasks.loop.stages import (
    ImproveReport,
    build_label_set,
    check_selection,
    compare_sides,
    ensure_ray,
    fine_tune_model,
    finetune_options,
    list_compare_videos,
    ray_session,
    tuned_model,
    write_report,
)
from tasks.options import ClusterOptions, ModelOptions, ReconstructOptions
from tasks.reconstruction.actors import actor_pool
from tasks.reconstruction.archive import (
    delete_replaced_rows,
    identify_run,
    plan_videos,
    reconstruct_video_task,
    report,
)


def _plan_benchmarks(benchmarks: dict[str, str], evaluations: str, model: ModelOptions, options: EvalOptions,
                     force: bool) -> list:
    return [plan_benchmark(name, data, evaluations, model, options, force) for name, data in benchmarks.items()]


def _run_side(model: ModelOptions, videos: list, compare_root: str, plans: list, evaluations: str,
              reconstruct: ReconstructOptions, cluster: ClusterOptions, force: bool) -> tuple[str, str]:
    """One model on one actor pool: the comparison videos into `compare_root`, the benchmark sequences into
    `evaluations`, then each benchmark's averages. Returns (model version, precision)."""
    identity = identify_run(model, reconstruct)
    plan = plan_videos(videos, compare_root, identity, force)
    units = [unit for p in plans for unit in p.pending]
    results, outcomes = [], []
    if plan.pending or units:
        ensure_ray(cluster)
        with actor_pool(model, cluster) as pool:
            runs = reconstruct_video_task.map(plan.pending, pool=unmapped(pool), dataset=unmapped(compare_root),
                                              identity=unmapped(identity), force=unmapped(force))
            evals = evaluate_sequence_task.map(units, pool=unmapped(pool), dataset=unmapped(evaluations),
                                               force=unmapped(force))
            results, outcomes = [f.result() for f in runs], [f.result() for f in evals]
    delete_replaced_rows(compare_root, return_state=True)
    report(plan.done + results, compare_root)
    for p in plans:
        averages = write_averages_task(p, evaluations)
        report_task(p, [o for o in outcomes if o.benchmark == p.benchmark], averages, evaluations)
    return identity.model_key


@flow(name="improve-model", task_runner=ThreadPoolTaskRunner(max_workers=32), log_prints=False)
def improve_model(
    dataset: str = "data/archive",
    out: str = "data/improve",
    where: str = "n_frames >= 60 AND detection_score_mean >= 0.5 AND jitter_mps3 < 200",
    benchmarks: dict[str, str] | None = None,
    evaluations: str | None = None,
    model: ModelOptions = ModelOptions(),
    options: ImproveOptions = ImproveOptions(),
    cluster: ClusterOptions = ClusterOptions(),
    force: bool = False,
) -> ImproveReport:
    """Fine-tune `model` on the tracks of `dataset` that `where` selects, and report whether it got better.

    Args:
        dataset: the archive (dataset root, folder or s3://bucket/prefix) whose tracks become labels.
        out: local folder of the loop: labels/<key>/ (one build per selection), training/ (the runs and their
            fine-tuned models), compare/base and compare/tuned (the comparison datasets), report.md and report.json.
        where: SQL condition over track_quality choosing the tracks to label (see `human3r schema`).
        benchmarks: {benchmark: its data folder} both models are evaluated on, e.g. {"emdb2": "/data/EMDB"};
            empty = none (the report then has the comparison only).
        evaluations: dataset root for the evaluations table; empty = <out>/evaluations.
        model: the base model: weights, body model (required: the labels and the training pose SMPL-X), device,
            precision (`tasks.options.ModelOptions`); the tuned model runs with the same settings.
        options: labels, fine-tuning overrides, evaluation and comparison (`tasks.loop.options.ImproveOptions`).
        cluster: where the model replicas and the training workers run (`tasks.options.ClusterOptions`).
        force: rebuild the labels, resume the training run, evaluate and reconstruct again what the datasets
            already hold for these models.
    """
    benchmarks = benchmarks or {}
    evaluations = evaluations or f"{out}/evaluations"
    score_tracks(dataset)
    selection = check_selection(dataset, where)
    build_dir = f"{out}/labels/{selection.build_key(options.labels)}"
    training = finetune_options(build_dir, model, options.finetune, f"{out}/training", cluster)  # checked before
    base_plans = _plan_benchmarks(benchmarks, evaluations, model, options.evaluation, force)  # anything is built
    build = build_label_set(dataset, build_dir, where, options.labels, force)
    videos, listed = list_compare_videos(build_dir, options.compare)
    with ray_session():  # the base runs while the model trains (Ray queues them when resources are short)
        training_run = fine_tune_model.submit(training, cluster, force)
        base = _run_side(model, listed, f"{out}/compare/base", base_plans, evaluations,
                         options.compare.reconstruct, cluster, force)
        tuned = training_run.result()
        tuned_options = tuned_model(model, tuned.model_path)
        tuned_plans = _plan_benchmarks(benchmarks, evaluations, tuned_options, options.evaluation, force)
        tuned_key = _run_side(tuned_options, listed, f"{out}/compare/tuned", tuned_plans, evaluations,
                              options.compare.reconstruct, cluster, force)
    comparison = compare_sides(f"{out}/compare/base", f"{out}/compare/tuned", base[0], tuned_key[0])
    facts = [selection.line, f"labels: {build['line']}", f"fine-tuning: {tuned.line}",
             f"evaluations: {evaluations}", f"comparison datasets: {out}/compare/base, {out}/compare/tuned"]
    return write_report(out, evaluations, base, tuned_key, tuned.model_path, facts, tuple(benchmarks), comparison,
                        videos.line)


if __name__ == "__main__":
    improve_model()
