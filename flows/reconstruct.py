"""`reconstruct-archive`: discover the videos of an archive, skip what the dataset holds, reconstruct the rest on
a pool of Ray actors, and report per video.

    prefect deployment run reconstruct-archive/demo --watch      # see prefect.yaml for the deployments
    python flows/reconstruct.py --help                           # run it locally, without a server
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.archive import actor_pool, build_options, discover_videos, plan_videos, reconstruct_video_task, report


@flow(name="reconstruct-archive", task_runner=ThreadPoolTaskRunner(max_workers=32), log_prints=False)
def reconstruct_archive(
    source: str = "data/inbox",
    dataset: str = "data/archive",
    checkpoint: str = "auto",
    preset: str | None = None,
    body_model: str | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    reset_interval: int | None = None,
    ttt3r: bool = False,
    points_per_frame: int = 2000,
    conf_threshold: float = 1.5,
    ray_address: str | None = None,
    num_actors: int = 1,
    gpus_per_actor: float | None = None,
    cpus_per_actor: float = 1.0,
    video_timeout_s: float = 3600.0,
    sample_videos: int = 0,
    force: bool = False,
) -> dict:
    """Reconstruct every video under `source` into the dataset at `dataset`.

    Args:
        source: folder, file or glob of videos.
        dataset: dataset root (folder or s3://bucket/prefix).
        checkpoint: weights spec: path, 'auto', 'hf:faneggg/human3r/<file>' or 'untrained:<preset>[:seed]'.
        preset: 672S, 672B, 672L, 896L or tiny (which file 'auto' prefers).
        body_model: SMPLX_NEUTRAL.npz on the actors' machines (joints are left empty without it).
        stride, max_frames, reset_interval, ttt3r, points_per_frame, conf_threshold: reconstruction options.
        ray_address: an existing Ray cluster ('auto', 'host:6379', 'ray://...'); empty = start a local one.
        num_actors: model replicas (one video each at a time).
        gpus_per_actor: GPUs per replica (fractions pack several per GPU); empty = 1 if the cluster has GPUs.
        cpus_per_actor: CPUs per replica (keep the total below the cluster's).
        video_timeout_s: a video taking longer is recorded as failed and its actor replaced.
        sample_videos: generate this many sample clips into `source` first (the demo).
        force: redo videos the dataset already holds with this model and these parameters.
    """
    options = build_options(stride=stride, max_frames=max_frames, reset_interval=reset_interval, ttt3r=ttt3r,
                            points_per_frame=points_per_frame, conf_threshold=conf_threshold)
    paths = discover_videos(source, sample_videos)
    plan = plan_videos(paths, dataset, checkpoint, preset, options, force)
    results: list[dict] = []
    if plan.pending:
        with actor_pool(checkpoint=checkpoint, preset=preset, body_model=body_model, ray_address=ray_address,
                        num_actors=num_actors, gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor,
                        video_timeout_s=video_timeout_s) as pool:
            futures = reconstruct_video_task.map(plan.pending, pool=unmapped(pool), dataset=unmapped(dataset),
                                                 options=unmapped(options), force=unmapped(force))
            results = [f.result() for f in futures]
    return report(plan.done + results, dataset)


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Run reconstruct-archive locally (no Prefect server needed).")
    ap.add_argument("source")
    ap.add_argument("dataset")
    ap.add_argument("--checkpoint", default="auto")
    ap.add_argument("--num-actors", type=int, default=1)
    ap.add_argument("--max-frames", type=int, default=None)
    args = ap.parse_args()
    out = reconstruct_archive(args.source, args.dataset, checkpoint=args.checkpoint, num_actors=args.num_actors,
                              max_frames=args.max_frames)
    print(json.dumps(out["counts"]))
