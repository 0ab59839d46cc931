"""`reconstruct-archive`: discover the videos of an archive, skip what the dataset holds, reconstruct the rest on
a pool of Ray actors, and report per video.

    prefect deployment run reconstruct-archive/demo --watch      # see prefect.yaml for the deployments
    prefect deployment run reconstruct-archive/nightly -p options='{"decode": {"stride": 2}}'
    python flows/reconstruct.py --help                           # run it locally, without a server
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.options import ClusterOptions, ModelOptions, ReconstructOptions
from tasks.reconstruction.archive import actor_pool, discover_videos, plan_videos, reconstruct_video_task, report
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
        model: weights, body model and device (checkpoint, preset, body_model, device).
        options: what changes the rows: decode (stride, max_frames, start_s, end_s, ...), convert
            (points_per_frame, conf_threshold), reset_interval, use_ttt3r.
        cluster: where the model replicas run (ray_address, num_actors, gpus_per_actor, cpus_per_actor,
            video_timeout_s).
        sample_videos: generate this many sample clips into `source` first (the demo).
        force: redo videos the dataset already holds with this model and these parameters.
    """
    paths = discover_videos(source, sample_videos)
    plan = plan_videos(paths, dataset, model, options, force)
    results = []
    if plan.pending:
        with actor_pool(model, cluster) as pool:
            futures = reconstruct_video_task.map(plan.pending, pool=unmapped(pool), dataset=unmapped(dataset),
                                                 options=unmapped(options), force=unmapped(force))
            results = [f.result() for f in futures]
    return report(plan.done + results, dataset)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Run reconstruct-archive locally (no Prefect server needed).")
    ap.add_argument("source")
    ap.add_argument("dataset")
    ap.add_argument("--checkpoint", default="auto")
    ap.add_argument("--num-actors", type=int, default=1)
    args = ap.parse_args()
    out = reconstruct_archive(args.source, args.dataset, model=ModelOptions(checkpoint=args.checkpoint),
                              cluster=ClusterOptions(num_actors=args.num_actors))
    print(out.line)
