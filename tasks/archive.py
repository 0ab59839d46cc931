"""The archive stages as Prefect tasks: discover, plan (skip what is done), reconstruct on Ray actors, report.

Each `@task` wraps a plain function of the same module that tests call directly. Exactly-once lives in the data
layer: `plan` asks the dataset which videos it already holds for this content hash, model and parameters, and the
actor checks again before writing; Prefect's cache is not involved (`NO_CACHE`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from storage import manifest
from storage.fs import open_root
from storage.parquet import write_failure
from tasks.convert import ConvertOptions
from tasks.decode import DecodeOptions, probe_video
from tasks.discover import list_videos
from tasks.errors import PipelineError
from tasks.reconstruct import ReconstructOptions

REPORT_COLUMNS = ("source_uri", "status", "video_id", "frames", "tracks", "points", "seconds", "attempts", "message")


@dataclasses.dataclass(frozen=True)
class Plan:
    pending: list[str]  # paths to reconstruct
    done: list[dict]  # summaries of videos skipped (already in the dataset) or refused at probe time
    model_version: str
    untrained: bool


def build_options(*, stride: int = 1, max_frames: int | None = None, reset_interval: int | None = None,
                  ttt3r: bool = False, points_per_frame: int = 2000, conf_threshold: float = 1.5,
                  max_side: int = 8192) -> ReconstructOptions:
    return ReconstructOptions(
        decode=DecodeOptions(stride=stride, max_frames=max_frames, max_side=max_side),
        convert=ConvertOptions(points_per_frame=points_per_frame, conf_threshold=conf_threshold),
        reset_interval=reset_interval, use_ttt3r=ttt3r,
    )


def discover(source: str, *, sample_videos: int = 0) -> list[str]:
    """Video files under `source` (folder, file or glob). With `sample_videos` > 0, first make sure the folder
    holds that many generated sample clips (the demo's footage)."""
    if sample_videos:
        from tasks.sample import make_sample_video

        folder = Path(source)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(sample_videos):
            target = folder / f"sample-{i:02d}.mp4"
            if not target.exists():
                tmp = folder / f".sample-{i:02d}.{os.getpid()}.mp4"
                make_sample_video(tmp, seed=i)
                tmp.replace(target)
    if not Path(source).exists() and not any(ch in source for ch in "*?["):
        raise PipelineError("discover", f"source {source!r} does not exist")
    return list_videos([source])


def plan(paths: list[str], dataset: str, *, checkpoint: str, preset: str | None, options: ReconstructOptions,
         force: bool = False) -> Plan:
    """Probe every video (hash, header) and split into pending and done; unreadable files become failure rows."""
    from human3r.weights import inspect_weights

    identity = inspect_weights(checkpoint, preset=preset)
    root = open_root(dataset)
    manifest.init_dataset(root)
    params_hash = manifest.params_hash(options.params())
    pending, done = [], []
    for path in paths:
        try:
            probe = probe_video(path, max_side=options.decode.max_side)
        except PipelineError as err:
            write_failure(root, source_uri=path, stage=err.stage, error=err.message, error_type="VideoError")
            done.append({"source_uri": path, "status": "failed", "stage": err.stage, "message": err.message})
            continue
        if not force and manifest.is_done(root, probe.video_id, identity.model_version, params_hash):
            commit = manifest.read_commit(root, probe.video_id)
            done.append({"source_uri": path, "status": "skipped", "video_id": probe.video_id,
                         "frames": commit.rows.get("frames", 0), "points": commit.rows.get("points", 0),
                         "message": "already in the dataset"})
        else:
            pending.append(path)
    return Plan(pending, done, identity.model_version, identity.is_untrained)


@contextlib.contextmanager
def actor_pool(*, checkpoint: str, preset: str | None, body_model: str | None, ray_address: str | None,
               num_actors: int, gpus_per_actor: float | None, cpus_per_actor: float, video_timeout_s: float):
    """Connect to (or start) Ray and hold `num_actors` model replicas for the duration of the block."""
    import ray

    from tasks.inference import ActorPool, ActorSpec, connect

    started_here = not ray.is_initialized() and not ray_address
    connect(ray_address)
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    spec = ActorSpec(checkpoint=checkpoint, preset=preset, body_model=body_model, num_gpus=gpus_per_actor,
                     num_cpus=cpus_per_actor)
    pool = ActorPool(spec, num_actors, video_timeout_s=video_timeout_s)
    try:
        pool.info()  # every model loaded before the first video is handed out
        yield pool
    finally:
        pool.shutdown()
        if started_here:
            ray.shutdown()


def summarize(summaries: list[dict], dataset: str) -> dict:
    counts = {k: sum(s.get("status") == k for s in summaries) for k in ("ok", "skipped", "failed")}
    line = (f"{counts['ok']} reconstructed, {counts['skipped']} skipped, {counts['failed']} failed "
            f"-> {dataset}")
    rows = [{k: s.get(k) for k in REPORT_COLUMNS} for s in summaries]
    return {"counts": counts, "line": line, "rows": rows,
            "frames": sum(s.get("frames") or 0 for s in summaries if s.get("status") == "ok")}


# ------------------------------------------------------------------------------------------------ Prefect tasks
@task(name="discover-videos", retries=3, retry_delay_seconds=[2, 5, 15])
def discover_videos(source: str, sample_videos: int = 0) -> list[str]:
    paths = discover(source, sample_videos=sample_videos)
    get_run_logger().info("found %d video(s) under %s", len(paths), source)
    return paths


@task(name="plan-videos", cache_policy=NO_CACHE)
def plan_videos(paths: list[str], dataset: str, checkpoint: str, preset: str | None, options: ReconstructOptions,
                force: bool = False) -> Plan:
    result = plan(paths, dataset, checkpoint=checkpoint, preset=preset, options=options, force=force)
    logger = get_run_logger()
    if result.untrained:
        logger.warning("UNTRAINED WEIGHTS (%s): a smoke run, rows are marked with this model_version",
                       result.model_version)
    logger.info("%d to reconstruct, %d already done or unreadable (model %s)", len(result.pending),
                len(result.done), result.model_version)
    return result


@task(name="reconstruct-video", cache_policy=NO_CACHE, task_run_name="reconstruct {path}")
def reconstruct_video_task(path: str, pool, dataset: str, options: ReconstructOptions, force: bool = False) -> dict:
    summary = pool.run(path, dataset, options.to_dict(), force=force)
    logger = get_run_logger()
    if summary["status"] == "failed":
        logger.warning("%s failed at %s: %s", path, summary.get("stage"), summary.get("message"))
    else:
        logger.info("%s: %s, %s frames in %.1f s", path, summary["status"], summary.get("frames"),
                    summary.get("seconds") or 0)
    return summary


@task(name="report", cache_policy=NO_CACHE)
def report(summaries: list[dict], dataset: str) -> dict:
    result = summarize(summaries, dataset)
    create_table_artifact(key="reconstruct-report", table=result["rows"],
                          description=f"Per-video results of reconstruct-archive into {dataset}")
    create_markdown_artifact(key="reconstruct-summary", markdown=f"**{result['line']}**")
    get_run_logger().info(result["line"])
    return result

