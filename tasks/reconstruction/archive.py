"""The archive stages as Prefect tasks: discover, plan (skip what is done), reconstruct on Ray actors, delete the rows
of the runs they replaced, report.

Each `@task` wraps a plain function (here or in `tasks.reconstruction.video`) that tests call directly. The run's
identity (`tasks.identity.RunIdentity`: weights, precision, body model, row-changing options) is decided once and
travels to every actor. Exactly-once lives in the data layer: `plan` (tasks.reconstruction.plan) asks the dataset
which videos it already holds for this content hash and identity, probing in parallel only the files that are new or
changed since the last scan (the `sources` table), and the actor checks again before writing; Prefect's cache is not
involved (`NO_CACHE`). The probe made by `plan` travels to the actor, so each video is hashed once.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from storage.fs import open_root
from tasks.errors import SourceError
from tasks.identity import RunIdentity
from tasks.options import ModelOptions, ReconstructOptions
from tasks.reconstruction.decode import VideoProbe
from tasks.reconstruction.discover import Listed, list_sources
from tasks.reconstruction.outcomes import Report, VideoSummary, summarize
from tasks.reconstruction.plan import Plan, plan


def discover(source: str, *, sample_videos: int = 0) -> list[Listed]:
    """Video files under `source` (folder, file, glob, or an s3:// prefix or object: see
    `tasks.reconstruction.discover`). With `sample_videos` > 0, first make sure the folder holds that many generated
    sample clips (the demo's footage)."""
    if sample_videos:
        from tasks.ops.sample import make_sample_video

        folder = Path(source)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(sample_videos):
            target = folder / f"sample-{i:02d}.mp4"
            if not target.exists():
                tmp = folder / f".sample-{i:02d}.{os.getpid()}.mp4"
                make_sample_video(tmp, seed=i)
                tmp.replace(target)
    if "://" not in source and not Path(source).exists() and not any(ch in source for ch in "*?["):
        raise SourceError(f"the source {source!r} does not exist; give a folder, file or glob of videos")
    return list_sources([source])


# ------------------------------------------------------------------------------------------------ Prefect tasks
@task(name="discover-videos", retries=3, retry_delay_seconds=[2, 5, 15])
def discover_videos(source: str, sample_videos: int = 0) -> list[Listed]:
    paths = discover(source, sample_videos=sample_videos)
    get_run_logger().info("found %d video(s) under %s", len(paths), source)
    return paths


@task(name="identify-run", cache_policy=NO_CACHE)
def identify_run(model: ModelOptions, options: ReconstructOptions) -> RunIdentity:
    identity = RunIdentity.planned(model, options)
    logger = get_run_logger()
    if identity.weights.is_untrained:
        logger.warning("UNTRAINED WEIGHTS (%s): a smoke run, rows are marked with this model_version",
                       identity.model_version)
    logger.info("model %s, %s, body model %s, params %s", identity.model_version, identity.precision,
                identity.body_model or "none (joints left empty)", identity.params_hash)
    return identity


@task(name="plan-videos", cache_policy=NO_CACHE)
def plan_videos(paths: list[Listed], dataset: str, identity: RunIdentity, force: bool = False) -> Plan:
    result = plan(paths, open_root(dataset), identity, force=force)
    get_run_logger().info("%d to reconstruct, %d already done or unreadable; %d files probed, %d known unchanged",
                          len(result.pending), len(result.done), result.probed, result.reused)
    return result


@task(name="reconstruct-video", cache_policy=NO_CACHE, task_run_name="reconstruct {video.path}")
def reconstruct_video_task(video: VideoProbe, pool, dataset: str, identity: RunIdentity,
                           force: bool = False) -> VideoSummary:
    summary = pool.run(video, dataset, identity, force=force)
    logger = get_run_logger()
    if summary.status == "failed":
        logger.warning("%s failed at %s: %s", video.path, summary.stage, summary.message)
    else:
        logger.info("%s: %s, %s frames in %.1f s", video.path, summary.status, summary.frames, summary.seconds)
    return summary


@task(name="delete-replaced-rows", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def delete_replaced_rows(dataset: str) -> str:
    """Delete the rows of the runs this flow run replaced (and any a crashed run left) from the Delta files, so
    that plain Delta readers see the live rows (`storage.deletes`); idempotent."""
    from storage.deletes import delete_replaced

    line = delete_replaced(open_root(dataset), wait=True).line()
    get_run_logger().info(line)
    return line


@task(name="report", cache_policy=NO_CACHE)
def report(summaries: list[VideoSummary], dataset: str) -> Report:
    result = summarize(summaries, dataset)
    create_table_artifact(key="reconstruct-report", table=result.rows,
                          description=f"Per-video results of reconstruct-archive into {dataset}")
    create_markdown_artifact(key="reconstruct-summary", markdown=f"**{result.line}**")
    get_run_logger().info(result.line)
    return result
