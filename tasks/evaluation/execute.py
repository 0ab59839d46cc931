"""Running a plan's sequences: in this process (one network, a progress bar per sequence's frames) or on the Ray
actor pool the archive uses (`tasks.reconstruction.actors.ActorPool`, one replica per GPU, a bar over sequences).

Both call `tasks.evaluation.runner.evaluate_sequence` per sequence, so the rows, the exactly-once check and the
failure rows are the same; the pool adds replacement of a replica that dies (the sequence is retried) and a time
limit per sequence (`ClusterOptions.video_timeout_s`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.fs import Root
from tasks.evaluation.runner import EvalPlan, SequenceOutcome, evaluate_sequence
from tasks.options import ClusterOptions, ModelOptions

Report = Callable[[SequenceOutcome], None]  # called with each finished sequence


def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn())
    return Progress(*columns, console=console, disable=console is None)


def evaluate_here(plan: EvalPlan, root: Root, model: ModelOptions, *, force: bool = False, console=None,
                  report: Report | None = None) -> list[SequenceOutcome]:
    """Evaluate the plan's pending sequences in this process, in order, with one network."""
    from human3r.body import load_body_model
    from human3r.weights import load_model
    from tasks.evaluation.benchmarks import benchmark_protocol
    from tasks.evaluation.bodies import load_eval_bodies
    from tasks.reconstruction.video import resolve_device

    if not plan.pending:
        return []
    bp = benchmark_protocol(plan.benchmark)
    network = load_model(model.checkpoint, preset=model.preset, device=resolve_device(model.device),
                         precision=model.precision)
    network = network.compile_blocks() if model.compile else network
    body_model = load_body_model(model.body_model) if bp.kind == "human" else None
    bodies = load_eval_bodies(plan.pending[0].smpl_files, bp, model.body_model) if bp.kind == "human" else None
    outcomes = []
    with _progress(console) as progress:
        for unit in plan.pending:
            task = progress.add_task(f"{plan.benchmark} {unit.name}"[:48], total=unit.n_frames, fps=0.0)
            t0 = time.perf_counter()

            def update(done: int, task=task, t0=t0) -> None:
                progress.update(task, completed=done, fps=done / max(time.perf_counter() - t0, 1e-9))

            outcome = evaluate_sequence(unit, root, network, body_model=body_model, bodies=bodies, force=force,
                                        progress=update)
            progress.update(task, visible=False)
            outcomes.append(outcome)
            if report is not None:
                report(outcome)
    return outcomes


def evaluate_on_pool(plan: EvalPlan, root_uri: str, model: ModelOptions, cluster: ClusterOptions, *,
                     force: bool = False, console=None, report: Report | None = None) -> list[SequenceOutcome]:
    """Evaluate the plan's pending sequences on `cluster.num_actors` Ray replicas (`cluster.ray_address`, or a local
    cluster started for the call), as many at once as the pool takes."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tasks.reconstruction.actors import actor_pool

    if not plan.pending:
        return []
    outcomes = []
    with actor_pool(model, cluster) as pool, _progress(console) as progress:
        task = progress.add_task(f"{plan.benchmark}: sequences", total=len(plan.pending), fps=0.0)
        workers = cluster.num_actors * cluster.videos_per_actor
        with ThreadPoolExecutor(max_workers=workers) as threads:
            futures = [threads.submit(pool.evaluate, unit, root_uri, force=force) for unit in plan.pending]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                progress.advance(task)
                if report is not None:
                    report(outcome)
    order = {u.name: i for i, u in enumerate(plan.pending)}
    return sorted(outcomes, key=lambda o: order.get(o.sequence, len(order)))
