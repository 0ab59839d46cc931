"""`reconstruct-archive`: discover the videos of an archive, skip what the dataset holds, reconstruct the rest on
a pool of Ray actors, delete the rows of the runs they replaced, and report per video.

    prefect deployment run reconstruct-archive/demo --watch      # see prefect.yaml for the deployments
    prefect deployment run reconstruct-archive/nightly -p options='{"decode": {"stride": 2}}'
    python flows/reconstruct.py          # locally with the defaults (data/inbox -> data/archive), no server needed

Other parameters go through a deployment (`-p`) or a Python call of `reconstruct_archive(...)`; `human3r reconstruct`
does the same work in one process, without Prefect or Ray.
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.options import ClusterOptions, ModelOptions, ReconstructOptions
from tasks.reconstruction.actors import actor_pool
from tasks.reconstruction.archive import (
    delete_replaced_rows,
    discover_videos,
    identify_run,
    plan_videos,
    reconstruct_video_task,
    report,
)
from tasks.reconstruction.outcomes import Report


@flow(name="reconstruct-archive", task_runner=ThreadPoolTaskRunner(max_workers=32), log_prints=False)
def reconstruct_archive(
    source: str = "data/inbox",
    dataset: str = "data/archive",
    model: ModelOptions = ModelOptions(),
    options: ReconstructOptions = ReconstructOptions(),
    cluster: ClusterOptions = ClusterOptions(),
    sample_videos: int = 0,
    force: bool = False,
) -> Report:
    """Reconstruct every video under `source` into the dataset at `dataset`.

    Args:
        source: folder, file or glob of videos, or an s3://bucket/prefix/ (endpoint: ?endpoint_override=...).
        dataset: dataset root (folder or s3://bucket/prefix).
        model: the weights, the body model ($HUMAN3R_BODY_MODEL when not given) and how the network runs
            (`tasks.options.ModelOptions`: each field is described there, and in the deployment's parameter form).
        options: what the rows are made with: decoding, conversion to rows, resets
            (`tasks.options.ReconstructOptions`).
        cluster: where the model replicas run and how many (`tasks.options.ClusterOptions`).
        sample_videos: generate this many sample clips into `source` first (the demo).
        force: redo videos the dataset already holds with this model and these parameters.
    """
    paths = discover_videos(source, sample_videos)
    identity = identify_run(model, options)
    plan = plan_videos(paths, dataset, identity, force)
    results = []
    if plan.pending:
        with actor_pool(model, cluster) as pool:
            futures = reconstruct_video_task.map(plan.pending, pool=unmapped(pool), dataset=unmapped(dataset),
                                                 identity=unmapped(identity), force=unmapped(force))
            results = [f.result() for f in futures]
    # plain Delta readers now see the live rows only; a failure loses nothing (the next run or a vacuum catches up)
    delete_replaced_rows(dataset, return_state=True)
    return report(plan.done + results, dataset)


if __name__ == "__main__":
    reconstruct_archive()
